#!/usr/bin/env bash
# Instructions redis-server executes per EVALSHA call of one Lua script (valgrind callgrind; deterministic, so it
# compares before/after exactly even on a busy machine). The figure is (Ir of N calls - Ir of 0 calls) / N, each on a
# fresh private redis-server; redis-benchmark sends the calls (-P 16, keys from -r 10000 random numbers).
#   test/bench/callgrind/script-cost.sh <lua file> <N> <numkeys> <key...> <arg...>
#   node test/bench/callgrind/script-source.mjs ratelimit consume > /tmp/consume.lua
#   test/bench/callgrind/script-cost.sh /tmp/consume.lua 20000 1 'rl:{__rand_int__}' 1 'r|fw' 1000000000 60000
# Env: CG_KEEP=<file> keeps the N-call profile (callgrind_annotate <file>); CG_REDIS_ARGS adds redis-server options.
set -euo pipefail
src=$1; n=$2; shift 2
measure() {
  local calls=$1; shift
  local port=$((20000 + RANDOM % 20000))
  local out; out=$(mktemp)
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$out" redis-server --port "$port" --save '' --appendonly no \
    ${CG_REDIS_ARGS:-} >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local sha; sha=$(redis-cli -p "$port" -x script load < "$src")
  if [ "$calls" -gt 0 ]; then
    redis-benchmark -p "$port" -n "$calls" -P 16 -r 10000 -c 1 -q EVALSHA "$sha" "$@" >/dev/null
  fi
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" || true
  grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
  if [ -n "${CG_KEEP:-}" ] && [ "$calls" -gt 0 ]; then cp "$out" "$CG_KEEP"; fi
  rm -f "$out"
}
a=$(measure 0 "$@")
b=$(measure "$n" "$@")
echo "$(( (b - a) / n )) instructions per call"
