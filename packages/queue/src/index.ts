/**
 * @coordis/queue — a job queue on Redis Streams: at-least-once delivery with a fence per delivery (exactly-once
 * effects where the fence is checked), leases renewed while handlers run, retries with backoff and delays on Redis
 * server time, dead letters, results, priorities, per-group concurrency and rate limits, schedules that make one job
 * per run fleet-wide, and partitions over several Cluster slots.
 * @packageDocumentation
 */
export { type Codec, jsonCodec } from "./codec.js";
export { MAX_PROGRESS_BYTES } from "./delivery-runner.js";
export {
  JobCancelledError,
  JobDeadError,
  JobLostError,
  type JobLostReason,
  JobNotFoundError,
  PartitionsMismatchError,
  ResultTimeoutError,
  UnrecoverableError,
} from "./errors.js";
export { GROUP_SWEEP_MS } from "./group-sweeper.js";
export type { Job } from "./job.js";
export type { DeadLetter, JobInfo, JobState, QueueCounts } from "./job-info.js";
export { MAX_QUEUE_NAME_BYTES } from "./keys.js";
export {
  type Backoff,
  type CommonOptions,
  DEFAULT_ATTEMPTS,
  DEFAULT_BACKOFF,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_RESULT_TTL_MS,
  DEFAULT_RETENTION,
  type GroupLimits,
  type JobOptions,
  MAX_ADD_MANY,
  MAX_ATTEMPTS,
  MAX_PARTITIONS,
  MAX_PRIORITY,
  type QueueOptions,
  type Retention,
  type WorkerOptions,
} from "./options.js";
export { type AddResult, Queue } from "./queue.js";
export { RESULT_RECHECK_MS } from "./results.js";
export { SCHEDULE_POLL_MS } from "./scheduler.js";
export { MAX_SCHEDULE_NAME_BYTES, MIN_EVERY_MS, type ScheduleSpec } from "./schedules.js";
export { queueScripts } from "./scripts.generated.js";
export { type Handler, Worker } from "./worker.js";
export { CLOSE_GRACE_MS, type CloseOptions } from "./worker-close.js";
export { DEFAULT_BLOCK_MS, DEFAULT_LEASE_MS, MIN_LEASE_MS } from "./worker-options.js";
