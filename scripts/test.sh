#!/usr/bin/env bash
# Runs the test suite with Bun's runner and ends with one plain line "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
.tools/bun test --timeout 120000 "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
pass=$(grep -Eo '^ *[0-9]+ pass$' "$out" | tail -1 | tr -dc 0-9)
fail=$(grep -Eo '^ *[0-9]+ fail$' "$out" | tail -1 | tr -dc 0-9)
skip=$(grep -Eo '^ *[0-9]+ skip$' "$out" | tail -1 | tr -dc 0-9)
line="${pass:-0} passed, ${fail:-0} failed"
[ -n "$skip" ] && line="$line, $skip skipped"
echo "$line"
[ "${pass:-0}" -gt 0 ] || { echo "no test ran" >&2; exit 1; }
exit "$rc"
