import { setTimeout as sleep } from "node:timers/promises";
import {
  type CoordisObserver,
  notifyEvent,
  type RedisClient,
  runScript,
  runScriptDynamic,
  ScriptError,
  toCoordisError,
} from "@coordis/core";
import { type PartitionKeys, scheduledJobId } from "./keys.js";
import { NEVER_MS, nextRunAfter, parseStored } from "./schedules.js";
import { queueScripts } from "./scripts.generated.js";

/** Longest pause between two looks at a partition's schedules, ms (a schedule declared meanwhile waits this long). */
export const SCHEDULE_POLL_MS = 1_000;
/** Most due schedules one read returns. */
const SCHEDULE_PAGE = 100;
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

  /**
   * Fires what is due in one partition, a page of {@link SCHEDULE_PAGE} at a time; returns how long to wait before
   * looking again. A schedule it cannot fire (unreadable, or refused by the fire script) stays due and is reported on
   * every look; the next page skips those, so they neither hide the schedules after them nor make the look start over
   * at once.
   */
  async #tick(k: PartitionKeys): Promise<number> {
    let waitMs = SCHEDULE_POLL_MS;
    let offset = 0;
    for (;;) {
      const [now, nextInMs, ...due] = await runScript(
        this.#redis,
        queueScripts.scheduleDue,
        [k.schedz, k.sched],
        [SCHEDULE_PAGE, offset],
      );
      if (nextInMs >= 0) waitMs = Math.min(waitMs, nextInMs);
      for (let i = 0; i + 2 < due.length; i += 3) {
        // Stopped while the read was in flight: fire nothing more.
        if (this.#stopper.signal.aborted) return waitMs;
        const nextAt = await this.#fire(k, String(due[i]), Number(due[i + 1]), String(due[i + 2]), now);
        // One this look cannot fire stays due, before the next page: skipped. One another replica fired (or changed)
        // since the read is not counted: it left the due ones, or is read again with its new declaration.
        if (nextAt === undefined) offset++;
        else if (nextAt !== null) waitMs = Math.min(waitMs, nextAt - now);
      }
      if (due.length < SCHEDULE_PAGE * 3 || this.#stopper.signal.aborted) break;
    }
    return Math.min(SCHEDULE_POLL_MS, Math.max(1, waitMs));
  }

  /**
   * Fires one due schedule (`text`: its declaration as read). @returns its next run time; undefined when this look
   * cannot fire it and it stays due where it is (unreadable, refused); null when it is no longer as read (another
   * replica fired it, or changed its declaration or run time, since the read)
   */
  async #fire(
    k: PartitionKeys,
    name: string,
    dueAt: number,
    text: string,
    now: number,
  ): Promise<number | undefined | null> {
    const stored = parseStored(text);
    if (stored === null) {
      const error = new Error(
        `schedule "${name}": its stored declaration is not one this version can read (declare it again, or unschedule it)`,
      );
      this.#event("schedule-error", { error, schedule: name });
      return undefined;
    }
    let nextAt: number;
    try {
      // Catch-up policy: runs missed while nothing fired are coalesced into this one job (for run time dueAt); the
      // schedule then goes on from the first run after now.
      nextAt = nextRunAfter(stored.spec, Math.max(now, dueAt)) ?? NEVER_MS;
    } catch (err) {
      // A declaration this version cannot compute (another version's pattern): it stays due, reported on every look;
      // the partition's other schedules fire all the same.
      this.#event("schedule-error", { error: toCoordisError(err), schedule: name });
      return undefined;
    }
    let fired: number;
    try {
      fired = await runScriptDynamic(
        this.#redis,
        queueScripts.scheduleFire,
        [k.jobs, k.ready, k.delayed, k.prio, k.wake, k.sched, k.schedz],
        // The declaration read: a replica that changed it since makes the fire a no-op (the next look makes the run
        // with the new one).
        [name, dueAt, nextAt, scheduledJobId(name, dueAt), String(stored.job[0]), stored.job.slice(1).join(" "), text],
      );
    } catch (err) {
      const error = toCoordisError(err);
      // Redis unreachable: the look ends, and the next one comes after a pause.
      if (!(error instanceof ScriptError)) throw error;
      // Refused by the script (it changed nothing): reported, and the other schedules fire all the same.
      this.#event("schedule-error", { error, schedule: name });
      return undefined;
    }
    if (fired === 1) this.#event("schedule-fired", { schedule: name });
    return fired === 0 ? null : nextAt;
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
