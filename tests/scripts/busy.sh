#!/usr/bin/env bash
# `make test-busy`: the whole `make test`, RUNS times in a row (default 3), each beside two CPU
# hogs (`stress-ng --cpu 2`), as on a CI machine shared with another job. Prints each run's
# result and duration, then a summary; exits non-zero if any run failed. Logs go to
# target/busy-N.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
mkdir -p target
summary=()
failed=0
for n in $(seq "$runs"); do
  stress-ng --cpu 2 --timeout 0 --quiet &
  hogs=$!
  started=$(date +%s)
  make test > "target/busy-$n.log" 2>&1
  status=$?
  kill "$hogs" 2>/dev/null; wait "$hogs" 2>/dev/null
  took=$(( $(date +%s) - started ))
  results=$(grep -E '^test result:' "target/busy-$n.log" | awk '{p+=$4; f+=$6} END {printf "%d passed, %d failed", p, f}')
  line="run $n: exit $status in $((took / 60)) min $((took % 60)) s ($results)"
  echo "$line"
  grep -E '^test .* FAILED$|^    [a-z_:]+$' "target/busy-$n.log" | sed 's/^/  /' | sort -u
  summary+=("$line")
  [ "$status" -eq 0 ] || failed=1
done
echo; echo "== make test-busy: $runs runs beside stress-ng --cpu 2 =="
printf '%s\n' "${summary[@]}"
exit "$failed"
