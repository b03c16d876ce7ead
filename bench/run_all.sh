#!/usr/bin/env bash
# Run every nixlift benchmark, one after the other:
#   bash bench/run_all.sh            # full: ~10 minutes
#   bash bench/run_all.sh --quick    # fewer repetitions, smaller counts: ~2 minutes
# Each benchmark starts and stops its own sandbox hosts (needs root). Tables and ratios go to
# stdout, progress to stderr. Exit status: 0 if every benchmark exited 0, else 1 (the others
# still run; a benchmark exits 1 when nixlift failed in the case it measures).
set -uo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
failed=()
begun=$SECONDS
for bench in overhead scale first_deploy memory many_hosts; do
  echo
  if ! "$python" "bench/$bench.py" "$@"; then
    failed+=("$bench")
  fi
done
echo
echo "== all benchmarks: $((SECONDS - begun)) s"
if ((${#failed[@]})); then
  echo "exited non-zero: ${failed[*]}"
  exit 1
fi
