import { type RedisClient, runScriptDynamic } from "@coordis/core";
import type { Delivery } from "./job.js";
import type { PartitionKeys } from "./keys.js";
import { queueScripts } from "./scripts.generated.js";

/**
 * Most deliveries renewed by one extend script call. A script hands each delivery's id (and its new deadline) to one
 * Redis command as arguments, and Lua unpacks at most about 8,000 values at once: a worker of concurrency 10,000
 * renews its leases in calls of this many.
 */
export const MAX_EXTEND_BATCH = 500;

/**
 * Renews the leases of every delivery a worker holds (running, or finished and waiting for its outcome to be
 * recorded), every `leaseMs / 3`: one extend script call per partition for up to MAX_EXTEND_BATCH of them. A
 * delivery Redis no longer holds while its handler runs is lost (reclaimed after its lease expired, or handed back)
 * or cancelled; one whose lease could not be renewed before its local deadline (Redis unreachable) is lost too.
 * Either way its signal aborts.
 * Internal.
 */
export class LeaseKeeper<T> {
  readonly #redis: RedisClient;
  readonly #keys: readonly PartitionKeys[];
  readonly #held: ReadonlyMap<string, Delivery<T>>;
  readonly #leaseMs: number;
  readonly #driftMs: number;
  readonly #lost: (d: Delivery<T>, reason: "lease-lost" | "cancelled") => void;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(
    redis: RedisClient,
    keys: readonly PartitionKeys[],
    held: ReadonlyMap<string, Delivery<T>>,
    leaseMs: number,
    lost: (d: Delivery<T>, reason: "lease-lost" | "cancelled") => void,
  ) {
    this.#redis = redis;
    this.#keys = keys;
    this.#held = held;
    this.#leaseMs = leaseMs;
    this.#driftMs = Math.floor(leaseMs * 0.01) + 2;
    this.#lost = lost;
  }

  start(): void {
    this.#timer = setInterval(() => void this.renew(), Math.max(1, Math.floor(this.#leaseMs / 3)));
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /**
   * One renewal round. Deliveries past their local deadline are lost at every tick, even while the previous round's
   * call is still in flight (a stopped Redis can hold it for the whole command timeout); the call itself is skipped
   * then.
   */
  async renew(): Promise<void> {
    if (this.#held.size === 0) return;
    const now = performance.now();
    const live: Delivery<T>[] = [];
    for (const d of this.#held.values()) {
      if (d.lostReason !== undefined) continue;
      if (now >= d.deadline) this.#lost(d, "lease-lost");
      else live.push(d);
    }
    if (this.#busy || live.length === 0) return;
    this.#busy = true;
    try {
      const byPartition = new Map<number, Delivery<T>[]>();
      for (const d of live) {
        const list = byPartition.get(d.partition);
        if (list === undefined) byPartition.set(d.partition, [d]);
        else list.push(d);
      }
      const calls: Promise<void>[] = [];
      for (const [p, list] of byPartition) {
        for (let i = 0; i < list.length; i += MAX_EXTEND_BATCH) {
          calls.push(this.#renewPartition(p, list.slice(i, i + MAX_EXTEND_BATCH)));
        }
      }
      await Promise.all(calls);
    } finally {
      this.#busy = false;
    }
  }

  async #renewPartition(partition: number, list: Delivery<T>[]): Promise<void> {
    const k = this.#keys[partition] as PartitionKeys;
    const args: (string | number)[] = [this.#leaseMs];
    for (const d of list) args.push(d.id, d.fence);
    const sentAt = performance.now();
    let reply: number[];
    try {
      reply = await runScriptDynamic(this.#redis, queueScripts.extend, [k.jobs, k.leases, k.active], args);
    } catch {
      // Unknown: the deliveries keep their local deadlines and the next round tries again.
      return;
    }
    list.forEach((d, i) => {
      const status = reply[i];
      if (status === 1) d.deadline = sentAt + this.#leaseMs - this.#driftMs;
      // A delivery whose handler ended is settled by its outcome's reply (recorded, or refused if it was lost): a
      // renewal applied just after its completion finds no lease, and that loses nothing.
      else if (d.phase === "running") this.#lost(d, status === 2 ? "cancelled" : "lease-lost");
    });
  }
}
