# Two commands do everything on a fresh Debian/Ubuntu machine:
#   make run    installs missing system packages, builds, starts Tokenwarden
#   make test   installs what the tests need, then runs fmt, clippy and every test
# Packages are installed with apt-get (through sudo when not root); elsewhere the missing
# ones are named so they can be installed by hand.

SHELL := /bin/bash
CARGO ?= cargo

# Build: D-Bus headers for the Secret Service keychain client; WebKitGTK, the tray indicator,
# SVG and X input libraries for the tray app (Tauri 2 on Linux).
BUILD_PKGS := pkg-config libdbus-1-dev gcc libwebkit2gtk-4.1-dev libayatana-appindicator3-dev \
	librsvg2-dev libxdo-dev
# Run: a Secret Service to keep the secrets in (started by with-keyring.sh where none runs), and
# the tray app's runtime libraries (the indicator is loaded at run time: without it the tray panics).
RUN_PKGS := gnome-keyring libsecret-tools dbus libwebkit2gtk-4.1-0 libayatana-appindicator3-1 \
	librsvg2-2 xdg-utils
# Test: an X server, a private D-Bus session and a real keyring daemon; WebKitWebDriver for the
# window, xclip for the clipboard, dbusmock for notifications, python3-gi for the tray's D-Bus,
# imagemagick for screenshots, libfaketime to step the clock under a running engine, redis-server
# (started by the fleet tests themselves, one per test on a loopback port) for the shared store;
# sway (headless), grim and wl-clipboard for the window and the clipboard on Wayland.
TEST_PKGS := xvfb xauth dbus dbus-x11 gnome-keyring libsecret-tools procps webkit2gtk-driver \
	xclip python3-dbusmock python3-gi python3-dbus gir1.2-glib-2.0 imagemagick x11-utils curl \
	libayatana-appindicator3-1 libfaketime redis-server redis-tools sway grim wl-clipboard \
	git python3-venv openssl
# The real clients of tests/tests/{mcp,metadata}.rs, from PyPI into a venv of their own.
PY := target/py
PY_REQUIREMENTS := tests/python-requirements.txt

# Windows: mingw-w64 links the cross-build, NSIS makes the installer; wine runs the Windows
# build's tests (tests/tests/windows.rs), in a prefix of their own under target/wine.
WINDOWS_TARGET := x86_64-pc-windows-gnu
WINDOWS_PKGS := mingw-w64 nsis
WINE_PKGS := wine wine64

# The busy-machine proof (not part of `make test`): stress-ng makes the two CPU hogs.
BUSY_PKGS := stress-ng

# Bench: wrk loads the API beside a bare axum handler (the ceiling) in the same run; npm fetches
# mcp-remote (pinned in tests/mcp/compare.py) into target/npm for the MCP comparison. Debian's
# npm only where no npm is on the PATH: NodeSource's nodejs carries its own and conflicts with it.
BENCH_PKGS := wrk $(if $(shell command -v npm),,nodejs npm)

# Packages: rsvg-convert draws every icon size from icons/tokenwarden.svg; rpm reads the .rpm,
# and the validators and man check what goes in. The Tauri CLI (crates.io, pinned like
# tauri-driver) bundles the .deb and .rpm.
PACKAGE_PKGS := librsvg2-bin imagemagick icnsutils rpm desktop-file-utils appstream man-db bash-completion
TAURI_CLI_VERSION := 2.12.4
# release for `make package`; the tests package the debug build they already have.
PROFILE ?= release
# What the packages and `make install` ship besides the binaries, generated at build time.
GEN := target/package
ICON_SIZES := 16 24 32 48 64 128 256 512
# make install / uninstall
PREFIX ?= /usr/local
DESTDIR ?=
COMMA := ,

.PHONY: run test test-busy build bench package package-files install uninstall icons windows windows-cli deps-busy deps-build deps-run deps-test deps-bench deps-driver deps-package deps-windows check-cargo lint

# The tray app where there is a display, else the headless engine (`serve`).
run: deps-build deps-run check-cargo
	$(CARGO) build --release -p tokenwarden
	@if [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]; then \
		echo "make run: a display is available (DISPLAY/WAYLAND_DISPLAY): starting the tray app"; \
		src-tauri/scripts/with-keyring.sh ./target/release/tokenwarden; \
	else \
		echo "make run: no display (DISPLAY and WAYLAND_DISPLAY are unset): starting the headless engine, tokenwarden serve"; \
		src-tauri/scripts/with-keyring.sh ./target/release/tokenwarden serve; \
	fi

# The packages' tests install the .deb made from this debug build (PROFILE=debug), as root.
# The Windows CLI (debug) is what the wine tests run.
test: deps-build deps-test deps-driver deps-package deps-windows check-cargo lint
	$(CARGO) build --workspace --all-targets
	$(MAKE) --no-print-directory windows-cli
	$(MAKE) --no-print-directory package PROFILE=debug
	tests/scripts/session.sh $(CARGO) test --workspace --no-fail-fast -- --test-threads=4

# `make test` three times in a row (RUNS=N for another count), each beside `stress-ng --cpu 2`:
# the suite must hold on a machine another job keeps busy. Each run's result and duration are
# printed; logs in target/busy-N.log.
test-busy: deps-busy
	tests/scripts/busy.sh

# Figures for the README and BENCHMARKS.md: API latency and throughput against a bare axum
# ceiling, a 10,000-report 401 storm, CLI round trips beside curl, 1,000 accounts on one keyring,
# 10,000 accounts on the sealed database store (start, restart, memory, idle CPU, lateness, cost
# per refresh), what /v1/proxy adds to a call made directly, a fleet host's serving beside a local
# one and how fast a refresh reaches three hosts on one Redis, and 500 clients for 60 s while the
# token rotates, the crash window (a provider's answer until it is durable in the journal), and
# `tokenwarden mcp` beside mcp-remote (npm) and the MCP SDK's own HTTP client.
# Every figure is printed as it comes, then all of them again together at the end (each line
# names its baseline beside it: the ceiling, curl, the keychain store, the provider's own time).
bench: deps-build deps-test deps-bench deps-driver check-cargo
	$(CARGO) build --release --workspace
	set -o pipefail; { TOKENWARDEN_BIN=$(CURDIR)/target/release/tokenwarden \
		$(if $(BASELINE),TOKENWARDEN_BASELINE_BIN=$(abspath $(BASELINE))) tests/scripts/session.sh \
		$(CARGO) test --release -p tokenwarden-e2e --test bench --test desktop_bench --test durable_window --test mcp_bench -- --nocapture --include-ignored --test-threads=1 && \
	TOKENWARDEN_BIN=$(CURDIR)/target/release/tokenwarden TOKENWARDEN_LOAD=500x60 tests/scripts/session.sh \
		$(CARGO) test --release -p tokenwarden-e2e --test load -- --nocapture && \
	$(CARGO) test --release -p tokenwarden --lib bench_ -- --ignored --nocapture; } 2>&1 | tee target/bench.log
	@echo; echo "== make bench: every figure (BENCHMARKS.md has them as tables) =="; \
		grep -oE '(bench|load|history): .*|desktop bench.*|answer → durable.*|^  (launch|resident|CPU over|a search|scrolled|opened again).*' target/bench.log

# A .deb and an .rpm under target/$(PROFILE)/bundle/{deb,rpm}/ (README: "Installed files").
# release: the Tauri CLI builds both binaries for production, then bundles them. debug (what
# `make test` installs and checks): the binaries the tests already run, bundled as they are.
package: deps-build deps-package check-cargo package-files
ifeq ($(PROFILE),debug)
	$(CARGO) build --workspace
	cd src-tauri && $(CARGO) tauri bundle --ci --debug --features desktop --bundles deb,rpm \
		--config ../packaging/tauri.package.json
else
	cd src-tauri && $(CARGO) tauri build --ci --features desktop --bundles deb,rpm \
		--config ../packaging/tauri.package.json
endif
	@ls -l target/$(PROFILE)/bundle/deb/*.deb target/$(PROFILE)/bundle/rpm/*.rpm

# Completions and man pages from the CLI's clap definitions, built with the same features as
# the binaries beside them (nothing is compiled twice), and every hicolor size of the icon
# from its one source.
package-files: deps-package check-cargo
	rm -rf $(GEN) && mkdir -p $(GEN)/icons
	$(CARGO) run -q -p tokenwarden --example package-docs \
		$(if $(filter release,$(PROFILE)),--release --features desktop$(COMMA)tauri/custom-protocol) -- $(GEN)
	for s in $(ICON_SIZES); do rsvg-convert -w $$s -h $$s icons/tokenwarden.svg -o $(GEN)/icons/$${s}x$${s}.png; done

# Every icon drawn again from icons/tokenwarden.svg after an edit (all are committed, as the
# builds compile them in): icon.png (Linux, the window), icon.ico (Windows: the sizes its shell
# asks for), icon.icns (macOS) and the tray's state icons, the same mark on each state's colour.
# The colours keep 3:1 contrast against light and dark taskbars alike (desktop/tray.rs tests it).
TRAY_COLOURS := idle:6e7889 fresh:1f9d55 busy:b5760b alert:d64545
icons: deps-package
	rsvg-convert -w 256 -h 256 icons/tokenwarden.svg -o icons/icon.png
	set -e; tmp=$$(mktemp -d); \
	for s in 16 24 32 48 64 128 256 512 1024; do \
		rsvg-convert -w $$s -h $$s icons/tokenwarden.svg -o $$tmp/$$s.png; done; \
	convert $$tmp/16.png $$tmp/24.png $$tmp/32.png $$tmp/48.png $$tmp/64.png $$tmp/256.png icons/icon.ico; \
	png2icns icons/icon.icns $$tmp/16.png $$tmp/32.png $$tmp/128.png $$tmp/256.png $$tmp/512.png $$tmp/1024.png >/dev/null; \
	for tc in $(TRAY_COLOURS); do \
		sed "s/#1f6feb/#$${tc#*:}/" icons/tokenwarden.svg > $$tmp/tray.svg; \
		rsvg-convert -w 64 -h 64 $$tmp/tray.svg -o icons/tray-$${tc%%:*}.png; done; \
	rm -rf $$tmp

# The same files as the packages, from a source build: PREFIX=/usr/local, DESTDIR for staging.
install: deps-build deps-package check-cargo package-files
	$(CARGO) build --release -p tokenwarden --features desktop,tauri/custom-protocol
	packaging/install.sh install "$(DESTDIR)" "$(PREFIX)"

uninstall:
	packaging/install.sh uninstall "$(DESTDIR)" "$(PREFIX)"

lint: deps-windows
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# Everything outside src/desktop builds without the tray app.
	$(CARGO) clippy -p tokenwarden --no-default-features --all-targets -- -D warnings
	# And on Windows, tray app included: its code paths are checked on every change.
	$(CARGO) clippy -p tokenwarden --target $(WINDOWS_TARGET) --all-targets -- -D warnings

# Both Windows binaries, release, cross-built with mingw-w64, in
# target/x86_64-pc-windows-gnu/release/ (tokenwarden-app.exe with WebView2Loader.dll beside
# it), then the NSIS installer with the Tauri bundler where it can be made here (README:
# Platforms says why it cannot on a machine without GitHub).
# The CLI is built without the tray app, so that it needs no WebView2Loader.dll beside it.
windows: deps-windows deps-package
	$(CARGO) build --release --target $(WINDOWS_TARGET) -p tokenwarden --no-default-features --bin tokenwarden
	$(CARGO) build --release --target $(WINDOWS_TARGET) -p tokenwarden --features desktop,tauri/custom-protocol --bin tokenwarden-app
	@ls -l target/$(WINDOWS_TARGET)/release/tokenwarden.exe target/$(WINDOWS_TARGET)/release/tokenwarden-app.exe
	cd src-tauri && $(CARGO) tauri bundle --ci --target $(WINDOWS_TARGET) --bundles nsis \
		--config ../packaging/tauri.windows.json || { \
		echo "make windows: the binaries are built; the NSIS installer is not (README: Platforms, Windows installer)"; }

# The Windows CLI the wine tests run (debug, like the rest of `make test`).
windows-cli: deps-windows
	$(CARGO) build --target $(WINDOWS_TARGET) -p tokenwarden --no-default-features --bin tokenwarden

build: deps-build check-cargo
	$(CARGO) build --workspace

deps-build:
	@.ci/install-packages.sh $(BUILD_PKGS)
deps-run:
	@.ci/install-packages.sh $(RUN_PKGS)
deps-test:
	@.ci/install-packages.sh $(TEST_PKGS)
	@# kubectl, for the exec credential test: Debian's (1.20) where none is installed.
	@command -v kubectl >/dev/null || .ci/install-packages.sh kubernetes-client
	@$(MAKE) --no-print-directory $(PY)/.installed
$(PY)/.installed: $(PY_REQUIREMENTS)
	@[ -x $(PY)/bin/python ] || python3 -m venv $(PY)
	$(PY)/bin/pip install --quiet --disable-pip-version-check -r $(PY_REQUIREMENTS)
	@touch $@
deps-busy:
	@.ci/install-packages.sh $(BUSY_PKGS)
deps-windows: check-cargo
	@.ci/install-packages.sh $(WINDOWS_PKGS) $(WINE_PKGS)
	@rustup target list --installed | grep -qx $(WINDOWS_TARGET) || rustup target add $(WINDOWS_TARGET)
deps-bench:
	@.ci/install-packages.sh $(BENCH_PKGS)
deps-package: check-cargo
	@.ci/install-packages.sh $(PACKAGE_PKGS)
	@$(CARGO) tauri --version 2>/dev/null | grep -qx 'tauri-cli $(TAURI_CLI_VERSION)' || \
		$(CARGO) install tauri-cli --locked --version '=$(TAURI_CLI_VERSION)'
# tauri-driver drives the real window through WebKitWebDriver (a crates.io package).
deps-driver: check-cargo
	@command -v tauri-driver >/dev/null || [ -x "$$HOME/.cargo/bin/tauri-driver" ] || \
		$(CARGO) install tauri-driver --locked --version '^2'

check-cargo:
	@command -v $(CARGO) >/dev/null || { echo "make: cargo not found. Install Rust (https://rustup.rs) and run again."; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
