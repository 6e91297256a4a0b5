import type { ChaosScenario } from "../scenario.js";
import { clusterFailover } from "./cluster-failover.js";
import { deadlinesScenario } from "./deadlines.js";
import { eventlogScenario } from "./eventlog.js";
import { lockFailover } from "./failover.js";
import { lockMutex, lockRedlock } from "./lock.js";
import { lockTick } from "./lock-tick.js";
import { pubsubCacheScenario } from "./pubsub-cache.js";
import { queueScenario } from "./queue.js";
import { ratelimitScenario } from "./ratelimit.js";
import { lockRedlockSlow } from "./redlock-slow.js";
import { scriptPath } from "./script-path.js";

/** Every registered chaos scenario, in run order. Add new ones here. */
export const scenarios: readonly ChaosScenario[] = [
  scriptPath,
  lockMutex,
  lockRedlock,
  lockRedlockSlow,
  lockTick,
  lockFailover,
  clusterFailover,
  ratelimitScenario,
  eventlogScenario(100_000),
  pubsubCacheScenario,
  queueScenario(20_000),
  deadlinesScenario,
];
