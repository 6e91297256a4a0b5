import { InvalidArgumentError, toCoordisError, validate } from "@coordis/core";
import { type ConsumeHandler, type ConsumeOptions, Consumer } from "./consumer.js";
import type { EventLog } from "./event-log.js";

/** Longest group or consumer name, in UTF-8 bytes. */
export const MAX_GROUP_NAME_BYTES = 256;

/** Options of {@link EventLog.group}. */
export interface ConsumerGroupOptions {
  /** This process' consumer name within the group, unique per running consumer (e.g. host + pid). */
  consumer: string;
  /**
   * Where a group that does not exist yet starts: `"start"` (default: every kept entry, so nothing appended before
   * the first consumer is skipped) or `"end"` (only entries appended after creation).
   */
  startAt?: "start" | "end";
}

/** One consumer's state, from XINFO CONSUMERS. */
export interface ConsumerInfo {
  readonly name: string;
  /** Entries delivered to it and not yet acknowledged. */
  readonly pending: number;
  /** Ms since it last read or claimed. */
  readonly idleMs: number;
}

/** A group's state for metrics, from XINFO GROUPS and XINFO CONSUMERS. */
export interface GroupInfo {
  readonly name: string;
  /** Entries delivered and not yet acknowledged (the group's PEL). */
  readonly pending: number;
  /** Entries not yet delivered to any consumer; `null` when Redis cannot tell (after XDEL/trims past the group). */
  readonly lag: number | null;
  readonly lastDeliveredId: string;
  /** Entries read by the group so far (`entries-read`), `null` when unknown. */
  readonly entriesRead: number | null;
  readonly consumers: ConsumerInfo[];
}

function flatToMap(flat: unknown): Map<string, unknown> {
  const m = new Map<string, unknown>();
  const a = flat as unknown[];
  for (let i = 0; i < a.length - 1; i += 2) m.set(String(a[i]), a[i + 1]);
  return m;
}

function numberOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/** Validates a group or consumer name. */
function groupName(argument: string, value: unknown): string {
  return validate.string(argument, value, { minBytes: 1, maxBytes: MAX_GROUP_NAME_BYTES });
}

/**
 * A consumer group of an {@link EventLog}: every entry is delivered to one consumer of the group and acknowledged
 * after its handler succeeds (at least once). Create it with {@link EventLog.group}.
 */
export class ConsumerGroup<T = unknown> {
  readonly name: string;
  readonly consumer: string;
  private readonly startAt: "start" | "end";
  private created: Promise<void> | undefined;

  /** @throws InvalidArgumentError for a bad group name, consumer name or option */
  constructor(
    readonly log: EventLog<T>,
    name: string,
    options: ConsumerGroupOptions,
  ) {
    this.name = groupName("groupName", name);
    if (options === undefined) throw new InvalidArgumentError("options.consumer", "a consumer name is required");
    const opts = validate.options<ConsumerGroupOptions>("options", options);
    this.consumer = groupName("options.consumer", opts.consumer);
    this.startAt =
      opts.startAt === undefined ? "start" : validate.oneOf("options.startAt", opts.startAt, ["start", "end"]);
  }

  /** Creates the group (and an empty stream) unless it exists. Idempotent. */
  create(): Promise<void> {
    this.created ??= (async () => {
      try {
        await this.log.redis.xgroup(
          "CREATE",
          this.log.keys.stream,
          this.name,
          this.startAt === "end" ? "$" : "0",
          "MKSTREAM",
        );
      } catch (err) {
        if (err instanceof Error && err.message.startsWith("BUSYGROUP")) return;
        this.created = undefined;
        throw toCoordisError(err);
      }
    })();
    return this.created;
  }

  /** @internal Forgets that the group was created (after NOGROUP: the stream or group was deleted). */
  recreate(): Promise<void> {
    this.created = undefined;
    return this.create();
  }

  /**
   * Starts consuming with `handler` and returns the running {@link Consumer}; call `stop()` to drain and end it.
   * @throws InvalidArgumentError for a bad handler or option (nothing is started)
   */
  consume(handler: ConsumeHandler<T>, options: ConsumeOptions = {}): Consumer<T> {
    const consumer = new Consumer<T>(this, validate.func<ConsumeHandler<T>>("handler", handler), options);
    consumer.start();
    return consumer;
  }

  /**
   * The group's pending count, lag and consumers (two round trips: XINFO GROUPS and XINFO CONSUMERS), for metrics.
   * @returns `null` when the group does not exist
   */
  async info(): Promise<GroupInfo | null> {
    try {
      const groups = (await this.log.redis.xinfo("GROUPS", this.log.keys.stream)) as unknown[];
      const mine = groups.map(flatToMap).find((g) => g.get("name") === this.name);
      if (mine === undefined) return null;
      const consumers = (await this.log.redis.xinfo("CONSUMERS", this.log.keys.stream, this.name)) as unknown[];
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
