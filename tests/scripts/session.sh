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
  # A fresh keyring folder: an old one with another password would stay locked. It is also
  # where the bus looks first for services to activate ($XDG_DATA_HOME/dbus-1/services), so
  # a keyring the bus starts by itself (after a crash, before the watchdog below) starts
  # unlocked on the same storage instead of locked, which made clients wait for a prompt.
  keyring_home=$(mktemp -d)
  export TW_KEYRING_HOME="$keyring_home" XDG_DATA_HOME="$keyring_home"
  mkdir -p "$keyring_home/dbus-1/services"
  printf '[D-BUS Service]\nName=org.freedesktop.secrets\nExec=%s\n' \
    "$(cd "$(dirname "$0")" && pwd)/keyring-activate.sh" \
    > "$keyring_home/dbus-1/services/org.freedesktop.secrets.service"
  exec dbus-run-session -- "$0" "$@"
fi
keyring_home="$TW_KEYRING_HOME"
trap 'rm -rf "$keyring_home"' EXIT
export XDG_DATA_HOME="$keyring_home"
start_keyring() {
  eval "$(echo -n "tokenwarden-test-session" | gnome-keyring-daemon --replace --unlock --components=secrets)"
  export GNOME_KEYRING_CONTROL SSH_AUTH_SOCK 2>/dev/null || true
  # The daemon that owns the Secret Service name on this bus (the tests start other keyrings
  # on private buses; those are not this session's).
  keyring_pid=""
  for _ in $(seq 50); do
    keyring_pid=$(dbus-send --session --print-reply=literal --dest=org.freedesktop.DBus / \
      org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null \
      | awk '{print $2}' || true)
    [ -n "$keyring_pid" ] && break
    sleep 0.1
  done
}
start_keyring
# gnome-keyring-daemon 42 sometimes aborts under the tests' load: an upstream bug (GNOME gitlab
# gnome-keyring #190, #196, #199: a client's first OpenSession racing its connection setup;
# "g_variant_new: expected GVariant of type 'v'"). The bus then starts it again for the next
# client that asks, unlocked on the same storage (the service file above), and that client
# waits for it instead of failing: only calls in flight at the crash see it. This loop only
# says so. (It used to start a daemon itself with --replace, which replaced the one the bus had
# just started, mid-call, and failed tests that a crash alone would not have.)
(
  last="$keyring_pid"
  while true; do
    sleep 1
    now=$(dbus-send --session --print-reply=literal --dest=org.freedesktop.DBus / \
      org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null \
      | awk '{print $2}' || true)
    if [ -n "$last" ] && ! kill -0 "$last" 2>/dev/null; then
      echo "session.sh: gnome-keyring-daemon (pid $last) is gone; the bus starts it again for the next client${now:+ (now pid $now)}" >&2
      last="$now"
    elif [ -z "$last" ]; then
      last="$now"
    fi
  done
) &
watchdog=$!
trap 'kill "$watchdog" 2>/dev/null; rm -rf "$keyring_home"' EXIT
export WEBKIT_DISABLE_COMPOSITING_MODE=1
status=0
"$@" || status=$?
exit "$status"
