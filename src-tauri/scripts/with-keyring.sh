#!/usr/bin/env bash
# Runs a command where an OS keychain (Secret Service) is reachable. On a desktop one
# already is, and the command just runs. On a headless machine (a server, a container, an SSH
# session) this starts a private D-Bus session with gnome-keyring and unlocks its login keyring
# with the password in TOKENWARDEN_KEYRING_PASSWORD, or one typed at the prompt. The keyring
# is kept in ~/.local/share/keyrings, so secrets survive restarts; the first run creates it
# with the password given then.
set -euo pipefail

has_secret_service() {
  [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] || return 1
  local method
  for method in ListNames ListActivatableNames; do
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      "org.freedesktop.DBus.$method" 2>/dev/null | grep -q '"org.freedesktop.secrets"' && return 0
  done
  return 1
}

if [ -z "${TW_KEYRING_SESSION:-}" ] && has_secret_service; then
  exec "$@"
fi

if [ -z "${TW_KEYRING_SESSION:-}" ]; then
  # The password must not stay in any environment: the bus daemon, the keyring daemon and the
  # command would all inherit it (and /proc/PID/environ shows it). It crosses the re-exec on
  # file descriptor 3 instead.
  password="${TOKENWARDEN_KEYRING_PASSWORD:-}"
  unset TOKENWARDEN_KEYRING_PASSWORD
  export TW_KEYRING_SESSION=1
  if [ -n "$password" ]; then
    exec 3<<<"$password"
    export TW_KEYRING_PASSWORD_FD=3
  fi
  unset password
  exec dbus-run-session -- "$0" "$@"
fi

password=""
if [ -n "${TW_KEYRING_PASSWORD_FD:-}" ]; then
  IFS= read -r password <&3 || true
  exec 3<&-
fi
unset TW_KEYRING_PASSWORD_FD TOKENWARDEN_KEYRING_PASSWORD
# A private session: `--replace` must not find (and kill) another session's keyring daemon.
unset GNOME_KEYRING_CONTROL
if [ -z "$password" ]; then
  if [ ! -t 0 ]; then
    echo "with-keyring: no keychain is running here. Set TOKENWARDEN_KEYRING_PASSWORD (the password of the login keyring in ~/.local/share/keyrings; the first run creates it) or run from a terminal to type it." >&2
    exit 1
  fi
  read -r -s -p "No keychain is running here; starting gnome-keyring. Keyring password (first run: choose one): " password
  echo >&2
fi
[ -n "$password" ] || { echo "with-keyring: the keyring password must not be empty" >&2; exit 1; }
printf '%s' "$password" | gnome-keyring-daemon --replace --unlock --components=secrets >/dev/null
unset password
exec "$@"
