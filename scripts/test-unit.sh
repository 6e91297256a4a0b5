#!/usr/bin/env bash
# The suite: Vitest against real Redis, then a check that no redis-server of this run is left running.
set -uo pipefail
export COORDIS_RUN_ID="run$$"
npx vitest run "$@"
status=$?
node scripts/check-strays.mjs || status=1
exit $status
