#!/usr/bin/env bash
# Run every nixlift benchmark, one after the other:
#   bash bench/run_all.sh                 # full: ~25-30 minutes (fanout alone ~8)
#   bash bench/run_all.sh --quick         # fewer repetitions, smaller counts: ~4 minutes
#   BENCHES="latency_copy fleet" bash bench/run_all.sh   # only these
# Each benchmark starts and stops its own sandbox hosts (needs root; fanout also a network
# namespace, a veth pair and tc). Tables and ratios go to stdout, progress to stderr. Exit
# status: 0 if every benchmark exited 0, else 1 (the others still run; a benchmark exits 1 when
# nixlift failed in the case it measures).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
python=.venv/bin/python
failed=()
begun=$SECONDS
read -r -a benches <<<"${BENCHES:-overhead scale first_deploy memory plan latency_copy fleet fleet_far fanout many_hosts}"
for bench in "${benches[@]}"; do
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
