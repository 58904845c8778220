# Two commands do everything on a fresh Debian/Ubuntu machine:
#   make run    installs missing system packages, builds, starts Tokenwarden
#   make test   installs what the tests need, then runs fmt, clippy and every test
# Packages are installed with apt-get (through sudo when not root); elsewhere the missing
# ones are named so they can be installed by hand.

SHELL := /bin/bash
CARGO ?= cargo

# Build: D-Bus headers for the Secret Service keychain client.
BUILD_PKGS := pkg-config libdbus-1-dev gcc
# Run: a Secret Service to keep the secrets in (started by with-keyring.sh where none runs).
RUN_PKGS := gnome-keyring libsecret-tools dbus
# Test: an X server, a private D-Bus session and a real keyring daemon.
TEST_PKGS := xvfb xauth dbus dbus-x11 gnome-keyring libsecret-tools procps

.PHONY: run test build bench deps-build deps-run deps-test check-cargo lint

run: deps-build deps-run check-cargo
	$(CARGO) build --release -p tokenwarden
	src-tauri/scripts/with-keyring.sh ./target/release/tokenwarden serve

test: deps-build deps-test check-cargo lint
	$(CARGO) build --workspace --all-targets
	tests/scripts/session.sh $(CARGO) test --workspace --no-fail-fast -- --test-threads=4

# Figures for the README and closing notes: API latency and throughput, the 401 burst, CLI round
# trips, and 1,000 accounts on one keyring (first start, restart, idle CPU).
bench: deps-build deps-test check-cargo
	$(CARGO) build --release --workspace
	TOKENWARDEN_BIN=$(CURDIR)/target/release/tokenwarden tests/scripts/session.sh \
		$(CARGO) test --release -p tokenwarden-e2e --test bench -- --nocapture --include-ignored --test-threads=1

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build: deps-build check-cargo
	$(CARGO) build --workspace

deps-build:
	@.ci/install-packages.sh $(BUILD_PKGS)
deps-run:
	@.ci/install-packages.sh $(RUN_PKGS)
deps-test:
	@.ci/install-packages.sh $(TEST_PKGS)

check-cargo:
	@command -v $(CARGO) >/dev/null || { echo "make: cargo not found. Install Rust (https://rustup.rs) and run again."; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
