import { setTimeout as sleep } from "node:timers/promises";
import {
  type CoordisObserver,
  notifyEvent,
  type RedisClient,
  runScript,
  runScriptDynamic,
  toCoordisError,
} from "@coordis/core";
import { type PartitionKeys, scheduledJobId } from "./keys.js";
import { NEVER_MS, nextRunAfter, parseStored } from "./schedules.js";
import { queueScripts } from "./scripts.generated.js";

/** Longest pause between two looks at a partition's schedules, ms (a schedule declared meanwhile waits this long). */
export const SCHEDULE_POLL_MS = 1_000;
/** Pause after an error, ms. */
const ERROR_PAUSE_MS = 1_000;

/**
 * Fires a queue's schedules: per partition, reads the schedules whose run time has come (server time), and for each
 * one creates the run's job and moves the schedule to its next run in one script call that only the first replica
 * wins. Then sleeps until the next run time (as the server counts it) or {@link SCHEDULE_POLL_MS}. Internal.
 */
export class Scheduler {
  readonly #redis: RedisClient;
  readonly #keys: readonly PartitionKeys[];
  readonly #observer: CoordisObserver | undefined;
  readonly #name: string;
  readonly #stopper = new AbortController();
  #loops: Promise<void>[] = [];

  constructor(redis: RedisClient, keys: readonly PartitionKeys[], name: string, observer: CoordisObserver | undefined) {
    this.#redis = redis;
    this.#keys = keys;
    this.#name = name;
    this.#observer = observer;
  }

  start(): void {
    this.#loops = this.#keys.map((k) => this.#loop(k));
  }

  /** Stops; resolves once no tick runs (a call stuck on an unreachable Redis keeps it pending: bound the wait). */
  async stop(): Promise<void> {
    this.#stopper.abort();
    await Promise.all(this.#loops);
  }

  async #loop(k: PartitionKeys): Promise<void> {
    const signal = this.#stopper.signal;
    while (!signal.aborted) {
      let waitMs = SCHEDULE_POLL_MS;
      try {
        waitMs = await this.#tick(k);
      } catch (err) {
        this.#event("schedule-error", { error: toCoordisError(err) });
        waitMs = ERROR_PAUSE_MS;
      }
      await sleep(waitMs, undefined, { signal }).catch(() => {});
    }
  }

  /** Fires what is due in one partition; returns how long to wait before looking again. */
  async #tick(k: PartitionKeys): Promise<number> {
    const [now, nextInMs, ...due] = await runScript(this.#redis, queueScripts.scheduleDue, [k.schedz, k.sched], [100]);
    let waitMs = nextInMs < 0 ? SCHEDULE_POLL_MS : nextInMs;
    for (let i = 0; i + 2 < due.length; i += 3) {
      // Stopped while the read was in flight: fire nothing more.
      if (this.#stopper.signal.aborted) break;
      const name = String(due[i]);
      const dueAt = Number(due[i + 1]);
      const stored = parseStored(String(due[i + 2]));
      if (stored === null) continue;
      // Catch-up policy: runs missed while nothing fired are coalesced into this one job (for run time dueAt); the
      // schedule then goes on from the first run after now.
      let nextAt: number;
      try {
        nextAt = nextRunAfter(stored.spec, Math.max(now, dueAt)) ?? NEVER_MS;
      } catch (err) {
        // A declaration this version cannot read (another version's pattern): it stays due, reported on every look;
        // the partition's other schedules fire all the same.
        this.#event("schedule-error", { error: toCoordisError(err), schedule: name });
        continue;
      }
      const fired = await runScriptDynamic(
        this.#redis,
        queueScripts.scheduleFire,
        [k.jobs, k.ready, k.delayed, k.prio, k.wake, k.sched, k.schedz],
        // The declaration read: a replica that changed it since makes the fire a no-op (the next look makes the run
        // with the new one).
        [
          name,
          dueAt,
          nextAt,
          scheduledJobId(name, dueAt),
          String(stored.job[0]),
          stored.job.slice(1).join(" "),
          String(due[i + 2]),
        ],
      );
      if (fired === 1) this.#event("schedule-fired", { schedule: name });
      // Whoever fired it, the schedule's next run is nextAt now.
      waitMs = Math.min(waitMs, nextAt - now);
    }
    if (due.length >= 300) return 0;
    return Math.min(SCHEDULE_POLL_MS, Math.max(1, waitMs));
  }

  #event(type: string, extra: { error?: Error; schedule?: string }): void {
    notifyEvent(this.#observer, {
      primitive: "queue",
      type,
      name: this.#name,
      ...(extra.error === undefined ? {} : { error: extra.error }),
      ...(extra.schedule === undefined ? {} : { attributes: { schedule: extra.schedule } }),
    });
  }
}
