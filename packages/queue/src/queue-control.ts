import { runScript } from "@coordis/core";
import { type PartitionKeys, schedulePartition } from "./keys.js";
import { jobArgs, type ParsedJob } from "./options.js";
import type { QueueContext } from "./queue-context.js";
import { NEVER_MS, nextRunAfter, type ParsedSpec } from "./schedules.js";
import { queueScripts } from "./scripts.generated.js";

// The queue-wide settings a Queue stores in Redis: its schedules (fired by the workers' Scheduler) and pausing. The
// arguments are validated by the Queue.

/**
 * Stores schedule `name` (its timing and its job: options and encoded data) with its next run after the server's
 * current time. Two round trips. @returns true when the schedule was new or changed
 */
export async function declareSchedule<T, R>(
  q: QueueContext<T, R>,
  name: string,
  spec: ParsedSpec,
  job: ParsedJob,
  data: string,
): Promise<boolean> {
  const stored = JSON.stringify({ spec, job: jobArgs({ ...job, delayMs: 0 }, data) });
  await q.gate.ready();
  const k = q.keys[schedulePartition(name, q.opts.partitions)] as PartitionKeys;
  const [sec, usec] = await q.redis.time();
  const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  const nextAt = nextRunAfter(spec, now) ?? NEVER_MS;
  return (await runScript(q.redis, queueScripts.scheduleSet, [k.sched, k.schedz], [name, stored, nextAt])) === 1;
}

/** Removes schedule `name`. @returns whether it existed */
export async function removeSchedule<T, R>(q: QueueContext<T, R>, name: string): Promise<boolean> {
  await q.gate.ready();
  const k = q.keys[schedulePartition(name, q.opts.partitions)] as PartitionKeys;
  return (await runScript(q.redis, queueScripts.unschedule, [k.sched, k.schedz], [name])) === 1;
}

/** Pauses (`1`) or resumes (`0`) every partition; resuming wakes waiting workers. */
export async function setPaused<T, R>(q: QueueContext<T, R>, paused: 0 | 1): Promise<void> {
  await q.gate.ready();
  await Promise.all(q.keys.map((k) => runScript(q.redis, queueScripts.pause, [k.meta, k.wake], [paused])));
}
