#!/usr/bin/env bash
# Started by the test session's D-Bus (tests/scripts/session.sh) when a client asks for the
# Secret Service and no keyring owns the name: the same unlocked keyring, on the same storage,
# in the foreground as activated services run.
echo -n "tokenwarden-test-session" | exec gnome-keyring-daemon --replace --foreground --unlock --components=secrets
