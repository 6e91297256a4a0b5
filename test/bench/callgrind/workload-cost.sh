#!/usr/bin/env bash
# Instructions redis-server executes per unit of a whole client workload (valgrind callgrind): a node script taking
# (port, N) runs N units against a fresh private redis-server; the figure is (Ir of N - Ir of 0) / N. Batching
# depends on timing under valgrind, so repeat a run or two: figures vary by a few percent.
#   test/bench/callgrind/workload-cost.sh test/bench/callgrind/queue-workload.mjs 5000
# Env: CG_KEEP=<file> keeps the N-unit profile; CG_REDIS_ARGS adds redis-server options.
set -euo pipefail
js=$1; n=$2
measure() {
  local units=$1
  local port=$((20000 + RANDOM % 20000))
  local out; out=$(mktemp)
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$out" redis-server --port "$port" --save '' --appendonly no \
    ${CG_REDIS_ARGS:-} >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  node "$js" "$port" "$units"
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" || true
  grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
  if [ -n "${CG_KEEP:-}" ] && [ "$units" -gt 0 ]; then cp "$out" "$CG_KEEP"; fi
  rm -f "$out"
}
a=$(measure 0)
b=$(measure "$n")
echo "$(( (b - a) / n )) instructions per unit"
