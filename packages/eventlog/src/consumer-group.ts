import { notifyEvent, toCoordisError, validate } from "@coordis/core";
import { Consumer } from "./consumer.js";
import { type ConsumeOptions, type GroupSettings, parseConsumeOptions } from "./consumer-options.js";
import { bounded, type GroupHandle, type LogContext } from "./context.js";
import type { ConsumeHandler, GroupInfo } from "./types.js";

function flatToMap(flat: unknown): Map<string, unknown> {
  const m = new Map<string, unknown>();
  const a = flat as unknown[];
  for (let i = 0; i < a.length - 1; i += 2) m.set(String(a[i]), a[i + 1]);
  return m;
}

function numberOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/**
 * A consumer group of an {@link EventLog}: every entry is delivered to one consumer of the group and acknowledged
 * after its handler succeeds (at least once). Create it with {@link EventLog.group}.
 */
export class ConsumerGroup<T = unknown> {
  readonly name: string;
  readonly consumer: string;
  readonly #log: LogContext;
  readonly #startAt: "start" | "end";
  readonly #handle: GroupHandle;
  #created: Promise<void> | undefined;
  /** The group vanished while a consumer ran (see {@link ConsumerGroup.#recreate}) and is not created again yet. */
  #lost = false;
  /** This instance has seen the group exist: it created it, or found it created (BUSYGROUP). */
  #existed = false;

  /** @internal use {@link EventLog.group} (it validates the name and options) */
  constructor(log: LogContext, settings: GroupSettings) {
    this.#log = log;
    this.name = settings.name;
    this.consumer = settings.consumer;
    this.#startAt = settings.startAt;
    this.#handle = {
      log,
      name: this.name,
      consumer: this.consumer,
      create: () => this.create(),
      recreate: () => this.#recreate(),
    };
  }

  /** Creates the group (and an empty stream) unless it exists. Idempotent. */
  create(): Promise<void> {
    this.#created ??= this.#make();
    return this.#created;
  }

  /**
   * A consumer got NOGROUP (or its blocking read ended because the stream was deleted): the group is gone, with the
   * stream when the log was lost (its key deleted, a Redis restart without persistence), or destroyed alone. It is
   * created again from the start of the stream, whatever `startAt` says: a stream recreated after the loss holds only
   * entries appended after the consumer started, and entries appended before the group is back must not be skipped
   * (a destroyed group's kept entries are delivered again: at least once). The call that creates it reports the event
   * `group-recreated`. A group this instance never saw exist was not lost: a claim can get NOGROUP before the first
   * XGROUP CREATE succeeded (it failed while Redis was unreachable), and the group is then created as a new one,
   * where `startAt` says.
   */
  #recreate(): Promise<void> {
    if (!this.#existed) return this.create();
    this.#lost = true;
    this.#created = undefined;
    return this.create();
  }

  async #make(): Promise<void> {
    const lost = this.#lost;
    try {
      await bounded(
        this.#log,
        this.#log.redis.xgroup(
          "CREATE",
          this.#log.keys.stream,
          this.name,
          lost || this.#startAt === "start" ? "0" : "$",
          "MKSTREAM",
        ),
        "XGROUP CREATE",
      );
    } catch (err) {
      if (err instanceof Error && err.message.startsWith("BUSYGROUP")) {
        // Created meanwhile (by another consumer of the group, which reported it when it was lost).
        this.#lost = false;
        this.#existed = true;
        return;
      }
      this.#created = undefined;
      throw toCoordisError(err);
    }
    this.#lost = false;
    this.#existed = true;
    if (lost) {
      notifyEvent(this.#log.observer, {
        primitive: "eventlog",
        type: "group-recreated",
        name: this.#log.name,
        attributes: { group: this.name },
      });
    }
  }

  /**
   * Starts consuming with `handler` and returns the running {@link Consumer}; call `stop()` to drain and end it.
   * @throws InvalidArgumentError for a bad handler, option or unknown option key (nothing is started)
   */
  consume(handler: ConsumeHandler<T>, options: ConsumeOptions = {}): Consumer<T> {
    const checked = validate.func<ConsumeHandler<T>>("handler", handler);
    return new Consumer<T>(this.#handle, checked, parseConsumeOptions(options));
  }

  /**
   * The group's pending count, lag and consumers (two round trips: XINFO GROUPS and XINFO CONSUMERS), for metrics.
   * @returns `null` when the group does not exist
   */
  async info(): Promise<GroupInfo | null> {
    const log = this.#log;
    const { redis, keys } = log;
    try {
      const groups = (await bounded(log, redis.xinfo("GROUPS", keys.stream), "XINFO GROUPS")) as unknown[];
      const mine = groups.map(flatToMap).find((g) => g.get("name") === this.name);
      if (mine === undefined) return null;
      const consumers = (await bounded(
        log,
        redis.xinfo("CONSUMERS", keys.stream, this.name),
        "XINFO CONSUMERS",
      )) as unknown[];
      return {
        name: this.name,
        pending: Number(mine.get("pending") ?? 0),
        lag: numberOrNull(mine.get("lag")),
        lastDeliveredId: String(mine.get("last-delivered-id") ?? "0-0"),
        entriesRead: numberOrNull(mine.get("entries-read")),
        consumers: consumers.map(flatToMap).map((c) => ({
          name: String(c.get("name")),
          pending: Number(c.get("pending") ?? 0),
          idleMs: Number(c.get("idle") ?? 0),
        })),
      };
    } catch (err) {
      if (err instanceof Error && err.message.includes("no such key")) return null;
      throw toCoordisError(err);
    }
  }
}
