#!/usr/bin/env bash
# Installs what the desktop (tray app) tests need on Debian/Ubuntu, beside session.sh's packages:
# the WebKit WebDriver, D-Bus stand-ins (python3-gi, python3-dbusmock), clipboard and screenshot
# tools, X11 inspection tools, and tauri-driver from crates.io. Idempotent; uses sudo when not root.
set -euo pipefail
pkgs=(webkit2gtk-driver python3-gi python3-dbus python3-dbusmock xclip imagemagick x11-utils
  curl libayatana-appindicator3-1 dbus-x11)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
command -v tauri-driver >/dev/null || cargo install tauri-driver --locked
