/**
 * @coordis/testing — real Redis for tests. Starts `redis-server` processes (standalone, independent masters,
 * Redis Cluster, Sentinel, TLS), injects faults (kill, SIGSTOP pause, restart), counts the commands a block of code
 * sent, waits for conditions and events without sleeps, and never leaves a server running after the test process is
 * gone.
 * @packageDocumentation
 */
export { findExecutable, INSTALL_HINT, RedisNotAvailableError, redisCliPath, redisServerPath } from "./binaries.js";
export {
  awaitCloseRequest,
  type CloseDuringOutageOptions,
  type CloseDuringOutageResult,
  closeDuringOutage,
  EXIT_WITHIN_MS,
  OUTAGE_MODES,
  type OutageMode,
  reportClosed,
  reportLost,
  type StartOutageOptions,
  startOutage,
} from "./close-during-outage.js";
export { type RedisCluster, type StartClusterOptions, startRedisCluster } from "./cluster.js";
export { type CommandCounts, countCommands, DEFAULT_IGNORED_COMMANDS } from "./commandstats.js";
export { containerRuntimeReachable, REDIS_IMAGE } from "./containers.js";
export { DeadlineExceededError, type DeadlineViolation, Watchdog, withDeadline } from "./deadline.js";
export { exitWithParent } from "./exit-with-parent.js";
export {
  type FaultLog,
  type FaultLogEntry,
  type FaultTargets,
  type RunScheduleOptions,
  runSchedule,
} from "./fault-runner.js";
export {
  describeSchedule,
  FAULT_KINDS,
  type FaultKind,
  type FaultSchedule,
  type FaultScheduleOptions,
  type FaultStep,
  type FaultTargetKind,
  faultSchedule,
  type GenerateFaultsOptions,
} from "./fault-schedule.js";
export { type RedisGroup, startRedisGroup } from "./group.js";
export { freePort } from "./ports.js";
export { testPrefix } from "./prefix.js";
export { mulberry32, randomSeed } from "./prng.js";
export { livePids } from "./processes.js";
export { type FaultProxy, type ProxyStats, type ProxyTarget, type StartProxyOptions, startProxy } from "./proxy.js";
export {
  EventRecorder,
  type ObserverRecorder,
  recordObserver,
  type WaitForOptions,
} from "./recorder.js";
export { startRedis } from "./redis-server.js";
export { waitForReplicas } from "./replication.js";
export { type RedisSentinelSetup, type StartSentinelOptions, startRedisSentinel } from "./sentinel.js";
export {
  LEAST_PRIVILEGE_USER,
  type LeastPrivilegeOptions,
  type RedisConfig,
  type RedisServer,
  type StartRedisOptions,
} from "./server-types.js";
export { slotOwnerPort } from "./slot-owner.js";
export { socketsOpenedBy } from "./sockets.js";
export { spawnWorker, type WorkerProcess } from "./spawn-worker.js";
export { MAX_STALL_MS, stallServer } from "./stall.js";
export { createTlsMaterial, type TlsMaterial } from "./tls.js";
export { eventually, tryWaitUntil, type WaitOptions, WaitTimeoutError, waitUntil } from "./wait.js";
