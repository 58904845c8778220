#!/usr/bin/env bash
# Plays the user's browser for the tray app, which opens authorization URLs as `$BROWSER URL`:
# GET the URL without following the redirect (the fake provider approves at once and answers
# 302 to the app's loopback callback), then GET that Location like a browser would.
# Each step is appended to $TW_BROWSER_LOG (if set) as one line, so a test can say what failed:
#   open URL | authorize HTTP STATUS | callback HTTP STATUS
# The callback URL holds the authorization code, so it is never written anywhere.
set -u
url="${1:?usage: fake-browser.sh URL}"
log="${TW_BROWSER_LOG:-/dev/null}"
echo "open $url" >>"$log"
answer=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$url") || {
  echo "authorize failed: curl exit $?" >>"$log"
  exit 1
}
status=${answer%% *}
location=${answer#* }
echo "authorize HTTP $status" >>"$log"
if [ -z "$location" ] || [ "$location" = "$answer" ]; then
  echo "authorize gave no redirect" >>"$log"
  exit 1
fi
# The listener is up before the URL is opened; retries only cover a slow first accept.
code=$(curl -sS -o /dev/null -w '%{http_code}' --retry 5 --retry-connrefused --retry-delay 1 \
  "$location") || code="curl exit $?"
echo "callback HTTP $code" >>"$log"
