import {
  type CoordisError,
  type RedisClient,
  RedisUnavailableError,
  runScriptDynamic,
  toCoordisError,
} from "@coordis/core";
import type { PartitionKeys } from "./keys.js";
import { queueScripts } from "./scripts.generated.js";

/** How a delivery ended, as the finish script takes it: completed, failed (retry), failed for good. */
export type FinishKind = "c" | "f" | "F";

/** What the finish script did with a delivery. */
export type FinishStatus = "refused" | "completed" | "retry" | "dead";

const STATUS: readonly FinishStatus[] = ["refused", "completed", "retry", "dead"];
/** The finish script's reply for a refused delivery whose job is completed. */
const REFUSED_JOB_COMPLETED = 4;

interface Pending {
  readonly id: string;
  readonly fence: number;
  readonly kind: FinishKind;
  readonly payload: string;
  readonly resolve: (status: FinishStatus) => void;
  readonly reject: (err: CoordisError) => void;
  /** `performance.now()` after which a finish that cannot reach Redis is given up. */
  readonly giveUpAt: number;
  /** Whether the delivery still holds its lease by the worker's reckoning (not lost, local deadline ahead). */
  readonly held: () => boolean;
  /** What `held()` said when the outcome was first sent. */
  heldAtFirstSend?: boolean;
  /** Sent before without an answer: that call may have taken effect. */
  resent?: boolean;
}

/** Most deliveries one finish script call carries. */
const MAX_FINISH_BATCH = 500;
/** Pause before a finish that could not reach Redis is sent again, ms. */
const FINISH_RETRY_MS = 200;

/** Retention and announcement settings of the finish script. */
export interface FinishSettings {
  readonly maxDone: number;
  readonly maxDead: number;
  readonly deadAgeMs: number;
}

/**
 * Coalesces the outcomes of deliveries: those settled in one event-loop turn are recorded by one finish script call
 * per partition (sent at the end of the turn). A call that cannot reach Redis is sent again (the fence makes a
 * repeat harmless: one that already took effect is refused) until `giveUpMs` after the delivery's outcome, so a Redis
 * restart does not make completed jobs run again. Internal.
 */
export class Finisher {
  readonly #redis: RedisClient;
  readonly #keys: readonly PartitionKeys[];
  readonly #settings: FinishSettings;
  readonly #giveUpMs: number;
  readonly #pending = new Map<number, Pending[]>();
  #timer: NodeJS.Immediate | undefined;
  #inflight = 0;
  readonly #idle: Array<() => void> = [];
  /** Outcomes waiting to be sent again, with their timers. */
  readonly #retries = new Map<NodeJS.Timeout, { partition: number; pending: Pending }>();
  #abandoned = false;

  constructor(redis: RedisClient, keys: readonly PartitionKeys[], settings: FinishSettings, giveUpMs: number) {
    this.#redis = redis;
    this.#keys = keys;
    this.#settings = settings;
    this.#giveUpMs = giveUpMs;
  }

  /** Deliveries whose outcome is queued, sent or waiting to be sent again. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Queues one outcome; resolves with what the script did, rejects when Redis stayed unreachable. */
  finish(
    partition: number,
    id: string,
    fence: number,
    kind: FinishKind,
    payload: string,
    held: () => boolean,
  ): Promise<FinishStatus> {
    return new Promise((resolve, reject) => {
      this.#inflight++;
      this.#queue(partition, {
        id,
        fence,
        kind,
        payload,
        held,
        resolve,
        reject,
        giveUpAt: performance.now() + this.#giveUpMs,
      });
    });
  }

  /** Resolves once nothing is queued or in flight. */
  async drain(): Promise<void> {
    this.#flush();
    while (this.#inflight > 0 || this.#pending.size > 0) await new Promise<void>((r) => this.#idle.push(r));
  }

  /**
   * Gives up every outcome still waiting to be sent again (the worker closed while Redis was unreachable): they
   * reject with RedisUnavailableError and no timer is left. Calls already sent settle as Redis answers; one that
   * fails afterwards is not sent again.
   */
  abandon(): void {
    this.#abandoned = true;
    const error = new RedisUnavailableError("the worker closed before this outcome could be recorded");
    const waiting = [...this.#retries];
    this.#retries.clear();
    for (const [timer, { pending }] of waiting) {
      clearTimeout(timer);
      pending.reject(error);
    }
    if (this.#timer !== undefined) clearImmediate(this.#timer);
    this.#timer = undefined;
    const queued = [...this.#pending.values()].flat();
    this.#pending.clear();
    for (const p of queued) p.reject(error);
    this.#settled(waiting.length + queued.length);
  }

  #queue(partition: number, p: Pending): void {
    let list = this.#pending.get(partition);
    if (list === undefined) {
      list = [];
      this.#pending.set(partition, list);
    }
    list.push(p);
    this.#timer ??= setImmediate(() => this.#flush());
  }

  #flush(): void {
    if (this.#timer !== undefined) clearImmediate(this.#timer);
    this.#timer = undefined;
    const batches = [...this.#pending];
    this.#pending.clear();
    for (const [partition, list] of batches) {
      for (let i = 0; i < list.length; i += MAX_FINISH_BATCH)
        this.#send(partition, list.slice(i, i + MAX_FINISH_BATCH));
    }
  }

  #send(partition: number, list: Pending[]): void {
    const k = this.#keys[partition] as PartitionKeys;
    const s = this.#settings;
    const args: (string | number)[] = [list.length, s.maxDone, s.maxDead, s.deadAgeMs, "SPUBLISH", k.channel];
    args.push(Math.random());
    for (const p of list) {
      p.heldAtFirstSend ??= p.held();
      args.push(p.id, p.fence, p.kind + p.payload);
    }
    runScriptDynamic(this.#redis, queueScripts.finish, k.all, args).then(
      (reply) => {
        list.forEach((p, i) => {
          const code = reply[i] as number;
          // A completion sent again after its first call went unanswered is refused when that call took effect (its
          // fence is spent): the job being completed, that call recorded it, provided the delivery still held its
          // lease when it was sent (otherwise another delivery may have completed the job and the first call been
          // refused as well).
          const recorded = code === REFUSED_JOB_COMPLETED && p.resent === true && p.kind === "c" && p.heldAtFirstSend;
          p.resolve(recorded ? "completed" : (STATUS[code] ?? "refused"));
        });
        this.#settled(list.length);
      },
      (err: unknown) => {
        const error = toCoordisError(err);
        const now = performance.now();
        let given = 0;
        for (const p of list) {
          if (error instanceof RedisUnavailableError && now < p.giveUpAt && !this.#abandoned) {
            // Still counted in flight until it is answered.
            p.resent = true;
            const timer: NodeJS.Timeout = setTimeout(() => {
              this.#retries.delete(timer);
              this.#queue(partition, p);
            }, FINISH_RETRY_MS);
            this.#retries.set(timer, { partition, pending: p });
          } else {
            p.reject(error);
            given++;
          }
        }
        this.#settled(given);
      },
    );
  }

  #settled(n: number): void {
    this.#inflight -= n;
    if ((this.#inflight === 0 && this.#pending.size === 0) || this.#abandoned)
      for (const r of this.#idle.splice(0)) r();
  }
}
