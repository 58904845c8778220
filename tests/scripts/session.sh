#!/usr/bin/env bash
# Runs a command inside a private desktop session: an X server (Xvfb), a D-Bus session bus and an
# unlocked gnome-keyring whose storage lives in a throwaway folder. Usage:
#   tests/scripts/session.sh COMMAND [ARGS...]
# X is started outside the bus so that services the bus activates inherit DISPLAY (TESTING.md).
set -euo pipefail
if [ -z "${TW_IN_X:-}" ]; then
  export TW_IN_X=1
  exec xvfb-run -a -s "-screen 0 1280x800x24" "$0" "$@"
fi
if [ -z "${TW_IN_BUS:-}" ]; then
  export TW_IN_BUS=1
  exec dbus-run-session -- "$0" "$@"
fi
# A fresh keyring folder: an old one with another password would stay locked.
keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
export XDG_DATA_HOME="$keyring_home"
eval "$(echo -n "tokenwarden-test-session" | gnome-keyring-daemon --replace --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL SSH_AUTH_SOCK 2>/dev/null || true
export WEBKIT_DISABLE_COMPOSITING_MODE=1
"$@"
