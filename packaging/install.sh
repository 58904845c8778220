#!/usr/bin/env bash
# `make install` / `make uninstall`: the files the .deb ships, from a source build, under
# PREFIX (default /usr/local), staged under DESTDIR when given. Uninstall removes exactly what
# install put there (the list it kept in lib/tokenwarden/installed-files), and never anything in a user's home (config, data, keychain).
# Usage: packaging/install.sh install|uninstall DESTDIR PREFIX
set -euo pipefail
action=$1 destdir=$2 prefix=$3
root="$destdir$prefix"
here=$(cd "$(dirname "$0")/.." && pwd)
gen="$here/target/package"
# TW_BIN_DIR: another build of the binaries (the tests stage the debug one).
bin="${TW_BIN_DIR:-$here/target/release}"

# destination (under PREFIX) <tab> mode <tab> source
files() {
  printf '%s\t755\t%s\n' \
    bin/tokenwarden "$bin/tokenwarden" \
    bin/tokenwarden-app "$bin/tokenwarden-app" \
    lib/tokenwarden/with-keyring "$here/src-tauri/scripts/with-keyring.sh"
  printf '%s\t644\t%s\n' \
    share/applications/tokenwarden.desktop "$here/packaging/tokenwarden.desktop" \
    share/metainfo/dev.tokenwarden.app.metainfo.xml "$here/packaging/dev.tokenwarden.app.metainfo.xml" \
    lib/systemd/user/tokenwarden.service "$gen/tokenwarden.service" \
    share/icons/hicolor/scalable/apps/tokenwarden.svg "$here/icons/tokenwarden.svg" \
    share/bash-completion/completions/tokenwarden "$gen/completions/tokenwarden.bash" \
    share/zsh/site-functions/_tokenwarden "$gen/completions/_tokenwarden" \
    share/fish/vendor_completions.d/tokenwarden.fish "$gen/completions/tokenwarden.fish" \
    share/doc/tokenwarden/LICENSE "$here/LICENSE"
  for png in "$gen"/icons/*.png; do
    local size
    size=$(basename "$png" .png)
    printf '%s\t644\t%s\n' "share/icons/hicolor/$size/apps/tokenwarden.png" "$png"
  done
  for page in "$gen"/man/*.1; do
    printf '%s\t644\t%s\n' "share/man/man1/$(basename "$page")" "$page"
  done
}

case $action in
install)
  for f in "$bin/tokenwarden" "$bin/tokenwarden-app" "$gen/completions/tokenwarden.bash"; do
    [ -e "$f" ] || { echo "install: $f is missing; run make install (it builds it)" >&2; exit 1; }
  done
  # The unit names the binary where it is installed, not where the package puts it.
  sed "s|/usr/bin/tokenwarden|$prefix/bin/tokenwarden|; s|/usr/lib/tokenwarden/|$prefix/lib/tokenwarden/|" \
    "$here/packaging/tokenwarden.service" >"$gen/tokenwarden.service"
  manifest="$root/lib/tokenwarden/installed-files"
  files | while IFS=$'\t' read -r dest mode src; do
    install -D -m "$mode" "$src" "$root/$dest"
    echo "  $prefix/$dest"
  done
  # What uninstall removes, whatever target/ holds by then.
  { files | cut -f1; echo lib/tokenwarden/installed-files; } >"$manifest"
  ;;
uninstall)
  manifest="$root/lib/tokenwarden/installed-files"
  [ -f "$manifest" ] || { echo "uninstall: nothing installed under $root ($manifest is missing)" >&2; exit 1; }
  while read -r dest; do
    if [ -e "$root/$dest" ] || [ -L "$root/$dest" ]; then
      rm -f "$root/$dest"
      echo "  removed $prefix/$dest"
    fi
  done <"$manifest"
  # Folders that only ever held our files.
  for d in lib/tokenwarden share/doc/tokenwarden; do
    rmdir "$root/$d" 2>/dev/null || true
  done
  ;;
*)
  echo "usage: $0 install|uninstall DESTDIR PREFIX" >&2
  exit 2
  ;;
esac
