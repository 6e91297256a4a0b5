import { runScript, toCoordisError } from "@coordis/core";
import { JobCancelledError, JobDeadError, JobNotFoundError } from "./errors.js";
import {
  type DeadLetter,
  type DeadPosition,
  type JobInfo,
  parseDeadPage,
  parseJobInfo,
  type QueueCounts,
} from "./job-info.js";
import { type PartitionKeys, partitionOf } from "./keys.js";
import { jobKeys, type QueueContext } from "./queue-context.js";
import type { ResultWaiters } from "./results.js";
import { queueScripts } from "./scripts.generated.js";

// What a Queue reads and changes of jobs already added: their state, results, cancellation and dead letters. The
// arguments are validated by the Queue.

/** A job's state, data, attempts, result or error, progress and due time; null when no such job exists. */
export async function readJob<T, R>(q: QueueContext<T, R>, id: string): Promise<JobInfo<T, R> | null> {
  await q.gate.ready();
  const k = jobKeys(q, id);
  const reply = await runScript(q.redis, queueScripts.get, [k.jobs, k.active, k.delayed, k.done, k.cancelled], [id]);
  return parseJobInfo(id, reply, q.opts.codec, q.opts.resultCodec);
}

/** Settles with the job's result once it is final (see Queue.result), woken by `results`. */
export function waitResult<T, R>(
  q: QueueContext<T, R>,
  results: ResultWaiters,
  id: string,
  timeoutMs: number | undefined,
): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const check = async (): Promise<boolean> => {
      const info = await readJob(q, id);
      if (info === null) throw new JobNotFoundError(id);
      if (info.state === "completed") {
        if (info.resultError !== undefined) throw info.resultError;
        resolve(info.result as R);
      } else if (info.state === "dead") throw new JobDeadError(id, info.attempts, info.error ?? "");
      else if (info.state === "cancelled") throw new JobCancelledError(id);
      else return false;
      return true;
    };
    const partition = partitionOf(id, q.opts.partitions);
    results.wait(id, partition, timeoutMs, check, reject).catch((err: unknown) => reject(toCoordisError(err)));
  });
}

/** Cancels a job that has not finished. @returns whether it was cancelled */
export async function cancelJob<T, R>(q: QueueContext<T, R>, id: string): Promise<boolean> {
  await q.gate.ready();
  const k = jobKeys(q, id);
  const reply = await runScript(q.redis, queueScripts.cancel, k.all as never, [
    id,
    q.opts.retention.completed,
    "SPUBLISH",
    k.channel,
  ]);
  return reply === 1;
}

/** Jobs by state, summed over partitions (one script call per partition, sent together). */
export async function countJobs<T, R>(q: QueueContext<T, R>): Promise<QueueCounts> {
  await q.gate.ready();
  const replies = await Promise.all(
    q.keys.map((k) =>
      runScript(
        q.redis,
        queueScripts.counts,
        [k.ready, k.prio, k.gwait, k.delayed, k.active, k.done, k.dead, k.cancelled, k.meta],
        [],
      ),
    ),
  );
  const c = { waiting: 0, delayed: 0, active: 0, completed: 0, dead: 0, cancelled: 0, paused: false };
  for (const [waiting, delayed, active, completed, dead, cancelled, paused] of replies) {
    c.waiting += waiting;
    c.delayed += delayed;
    c.active += active;
    c.completed += completed;
    c.dead += dead;
    c.cancelled += cancelled;
    c.paused ||= paused === 1;
  }
  return c;
}

/**
 * Up to `limit` dead letters of `partition` on, after `after` in it; `cursor` is absent once the last partition is
 * read. A cursor is `<partition>:<time of death>:<id>` of the last entry read (`<partition>::` at a partition's start).
 */
export async function readDeadLetters<T, R>(
  q: QueueContext<T, R>,
  limit: number,
  partition: number,
  after: DeadPosition,
): Promise<{ jobs: DeadLetter<T>[]; cursor?: string }> {
  const jobs: DeadLetter<T>[] = [];
  await q.gate.ready();
  let at = after;
  while (partition < q.opts.partitions && jobs.length < limit) {
    const k = q.keys[partition] as PartitionKeys;
    const want = limit - jobs.length;
    const reply = await runScript(q.redis, queueScripts.deadLetters, [k.dead, k.jobs], [at.score, at.id, want]);
    const { read, last, page } = parseDeadPage(reply, q.opts.codec);
    jobs.push(...page);
    if (read < want) {
      partition++;
      at = { score: "", id: "" };
    } else {
      at = last;
    }
  }
  return partition < q.opts.partitions ? { jobs, cursor: `${partition}:${at.score}:${at.id}` } : { jobs };
}

/** Moves a dead job back to the queue with a fresh set of attempts. @returns false when it is not a dead letter */
export async function retryDeadJob<T, R>(q: QueueContext<T, R>, id: string): Promise<boolean> {
  await q.gate.ready();
  return (await runScript(q.redis, queueScripts.retryDead, jobKeys(q, id).all as never, [id])) === 1;
}
