#!/usr/bin/env bash
# Instructions redis-server executes per operation (valgrind callgrind; deterministic, so before/after compare exactly
# even on a busy machine): (Ir of N operations - Ir of none) / N, each on a fresh private redis-server.
#   cost.sh script <lua file> <N> <numkeys> <key...> <arg...>
#       N EVALSHA calls of one script, sent by redis-benchmark (-P 16; __rand_int__ = one of 10,000 random numbers):
#       node test/bench/callgrind/script-source.mjs ratelimit consume > /tmp/consume.lua
#       test/bench/callgrind/cost.sh script /tmp/consume.lua 20000 1 'rl:{__rand_int__}' 1 'r|fw' 1000000000 60000
#   cost.sh workload <node script> <N>
#       a node script taking (port, N) runs N units of a client workload, e.g. queue-workload.mjs (a job's whole life);
#       batching under valgrind depends on timing: repeat a run or two.
# Env: CG_KEEP=<file> keeps the profile of the N run (callgrind_annotate <file>); CG_REDIS_ARGS adds redis-server options.
set -euo pipefail
mode=$1 file=$2 n=$3
shift 3
measure() {
  local count=$1 port=$((20000 + RANDOM % 20000)) out
  shift
  out=$(mktemp)
  # --hz 1: Redis' timer work grows with how long the slowed-down run lasts.
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$out" redis-server --port "$port" --save '' --appendonly no \
    --hz 1 ${CG_REDIS_ARGS:-} >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "$mode" = script ]; then
    local sha
    sha=$(redis-cli -p "$port" -x script load <"$file")
    if [ "$count" -gt 0 ]; then
      redis-benchmark -p "$port" -n "$count" -P 16 -r 10000 -c 1 -q EVALSHA "$sha" "$@" >/dev/null
    fi
  else
    node "$file" "$port" "$count"
  fi
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" || true
  grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
  if [ -n "${CG_KEEP:-}" ] && [ "$count" -gt 0 ]; then cp "$out" "$CG_KEEP"; fi
  rm -f "$out"
}
a=$(measure 0 "$@")
b=$(measure "$n" "$@")
echo "$(((b - a) / n)) instructions per operation"
