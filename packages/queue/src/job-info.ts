import { CoordisError, validate } from "@coordis/core";
import type { Codec } from "./codec.js";

/** Where a job is: waiting to run, delayed (or waiting for a retry), running, or finished one way or another. */
export type JobState = "waiting" | "delayed" | "active" | "completed" | "dead" | "cancelled";

/** What `Queue.get()` answers. */
export interface JobInfo<T = unknown, R = unknown> {
  readonly id: string;
  readonly state: JobState;
  /** The job's data, decoded; `undefined` when the queue's codec cannot decode it (see `dataError`). */
  readonly data: T;
  /** Why `data` is missing: the queue's codec could not decode it (`ERR_QUEUE_DECODE`, the codec's error as `cause`). */
  readonly dataError?: CoordisError;
  /** Attempts finished (failed, lost or, for a completed job, the successful one included). */
  readonly attempts: number;
  /** Attempts allowed. */
  readonly maxAttempts: number;
  /** The result, when completed and decodable (see `resultError`). */
  readonly result?: R;
  /** Why a completed job has no `result`: the queue's `resultCodec` could not decode it (`ERR_QUEUE_DECODE`). */
  readonly resultError?: CoordisError;
  /** The last failure (`"<name>: <message>"`), when an attempt failed. */
  readonly error?: string;
  /** The last value a handler passed to `job.progress()`. */
  readonly progress?: unknown;
  /** When a delayed (or retrying) job becomes due, Redis server time (Unix ms). */
  readonly dueAt?: number;
  /** When the job completed, died or was cancelled, Redis server time (Unix ms). */
  readonly finishedAt?: number;
  /** Its group, if any. */
  readonly group?: string;
  readonly priority: number;
  /** The fence of the running delivery, when active. */
  readonly fence?: number;
}

/** What `Queue.counts()` answers (summed over partitions). */
export interface QueueCounts {
  /** Ready to run (including jobs waiting for a slot of their group). */
  readonly waiting: number;
  /** Delayed, or waiting for a retry after a backoff, or for a group's rate limit. */
  readonly delayed: number;
  /** Running. */
  readonly active: number;
  /** Completed and still retained. */
  readonly completed: number;
  /** Dead letters retained. */
  readonly dead: number;
  /** Cancelled and still retained. */
  readonly cancelled: number;
  /** Whether the queue is paused. */
  readonly paused: boolean;
}

/** One dead letter. */
export interface DeadLetter<T = unknown> {
  readonly id: string;
  /** When it died, Redis server time (Unix ms). */
  readonly diedAt: number;
  readonly attempts: number;
  /** The job's data, decoded; `undefined` when the queue's codec cannot decode it (see `dataError`). */
  readonly data: T;
  /** Why `data` is missing: the queue's codec could not decode it (`ERR_QUEUE_DECODE`, the codec's error as `cause`). */
  readonly dataError?: CoordisError;
  /** The last attempt's error. */
  readonly error: string;
}

type GetReply =
  | [
      state: string,
      attempts: number,
      maxAttempts: number,
      data: string,
      result: string | null,
      error: string | null,
      progress: string | null,
      dueAt: number,
      finishedAt: number,
      group: string,
      priority: number,
      fence: number,
    ]
  | [];

/**
 * Sets `target[field]` (`data` or `result`) to job `id`'s `text` decoded with `codec`. Text the codec cannot decode
 * (written by another codec or an older format: a worker with this codec buries such a job at its first attempt) does
 * not fail the whole read: the field stays undefined and `dataError` / `resultError` says why (`ERR_QUEUE_DECODE`,
 * the codec's error as `cause`), so the job's state, attempts and error stay readable, `result()` answers a dead job's
 * fate, one such job hides no other dead letter, and the object can be logged or serialized as any other.
 */
function setDecoded<V>(target: object, field: "data" | "result", id: string, codec: Codec<V>, text: string): void {
  try {
    Object.assign(target, { [field]: codec.decode(text) });
  } catch (err) {
    const error = new CoordisError(
      "ERR_QUEUE_DECODE",
      `Job "${id}": the queue's ${field === "data" ? "codec" : "resultCodec"} cannot decode its ${field} ` +
        `(${validate.thrownMessage(err)}). Read it with a codec that can` +
        (field === "data" ? " (a dead job: retryDead() it once the workers' codec reads it)" : ""),
      { cause: err },
    );
    Object.assign(target, { [`${field}Error`]: error });
  }
}

/** Builds a JobInfo from the get script's reply. */
export function parseJobInfo<T, R>(
  id: string,
  reply: GetReply,
  codec: Codec<T>,
  resultCodec: Codec<R>,
): JobInfo<T, R> | null {
  if (reply.length === 0) return null;
  const [state, attempts, maxAttempts, data, result, error, progress, dueAt, finishedAt, group, priority, fence] =
    reply;
  const info: {
    -readonly [K in keyof JobInfo<T, R>]: JobInfo<T, R>[K];
  } = { id, state: state as JobState, data: undefined as T, attempts, maxAttempts, priority };
  setDecoded(info, "data", id, codec, data);
  if (state === "completed" && result !== null) setDecoded(info, "result", id, resultCodec, result);
  if (error !== null && error !== "") info.error = error;
  if (progress !== null) info.progress = JSON.parse(progress);
  if (dueAt > 0) info.dueAt = dueAt;
  if (finishedAt > 0) info.finishedAt = finishedAt;
  if (group !== "") info.group = group;
  if (fence > 0) info.fence = fence;
  return info;
}

/** Builds a page of dead letters from the dead-letters script's reply (`read`: entries it read, `last`: the last). */
export function parseDeadPage<T>(
  reply: [read: number, lastScore: string, lastId: string, ...job: (string | number)[]],
  codec: Codec<T>,
): { read: number; last: DeadPosition; page: DeadLetter<T>[] } {
  const page: DeadLetter<T>[] = [];
  for (let i = 3; i + 4 < reply.length; i += 5) {
    const id = String(reply[i]);
    const letter = {
      id,
      diedAt: Number(reply[i + 1]),
      attempts: Number(reply[i + 2]),
      data: undefined as T,
      error: String(reply[i + 4]),
    };
    setDecoded(letter, "data", id, codec, String(reply[i + 3]));
    page.push(letter);
  }
  return { read: Number(reply[0]), last: { score: String(reply[1]), id: String(reply[2]) }, page };
}

/** Where a walk of a partition's dead letters is: after the entry (time of death, id); both '' at its start. */
export interface DeadPosition {
  readonly score: string;
  readonly id: string;
}
