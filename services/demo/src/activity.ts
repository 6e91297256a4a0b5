import { type CoordisObserver, keyHead, type OperationEvent, type RedisClient, toCoordisError } from "@coordis/core";
import type { QueueCounts } from "@coordis/queue";

/** Width of one chart interval, ms. */
export const BUCKET_MS = 5_000;
/** How far back the charts go: 5 minutes. */
export const WINDOW_MS = 5 * 60_000;
/** How often a replica adds its counts to Redis, ms. */
export const FLUSH_MS = 1_000;

/** Counted series: rate-limit decisions and the stats queue's jobs, per interval, summed over every replica. */
export const COUNTERS = ["allowed", "denied", "added", "completed", "retried", "dead"] as const;
/** Sampled series: the stats queue's depth at the end of an interval (the last sample any replica took). */
export const GAUGES = ["waiting", "delayed", "active"] as const;
type Counter = (typeof COUNTERS)[number];
type Gauge = (typeof GAUGES)[number];

/** What `GET /v1/activity` answers: one value per interval, oldest first; null where nobody sampled a gauge. */
export interface ActivitySeries {
  bucketMs: number;
  /** Start of the first interval (Unix ms); the last one is the current, partial, interval. */
  from: number;
  counters: Record<Counter, number[]>;
  gauges: Record<Gauge, Array<number | null>>;
}

/**
 * The dashboard's charts, fleet-wide: every replica counts rate-limit decisions and the stats queue's adds and
 * outcomes as its observer sees them, and once a second adds its counts to one Redis hash per 5-second interval
 * (HINCRBY, with the queue's depth as of now: HSET), expiring after the window. Reading the charts is one pipelined
 * HMGET per interval. Intervals follow each replica's clock: these are pictures, not accounting.
 */
export class Activity {
  readonly #queue: string;
  readonly #pending = new Map<number, Partial<Record<Counter, number>>>();
  #redis: RedisClient | undefined;
  #head = "";
  #depth: (() => Promise<QueueCounts>) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  /** @param queue the queue whose adds and outcomes are counted */
  constructor(queue: string) {
    this.#queue = queue;
  }

  /** Counts what the primitives report; give it to the Coordis plugin (`observer`). */
  readonly observer: CoordisObserver = {
    onOperation: (e: OperationEvent) => {
      if (e.primitive === "ratelimit") {
        if (e.op !== "consume") return;
        if (e.outcome === "allowed") this.#count("allowed", 1);
        else if (e.outcome === "rejected") this.#count("denied", 1);
      } else if (e.primitive === "queue" && e.name === this.#queue) {
        if (e.op === "add" && e.outcome !== "error") {
          const jobs = Number(e.attributes?.jobs ?? 1);
          const duplicates = e.outcome === "duplicate" ? jobs : Number(e.attributes?.duplicates ?? 0);
          this.#count("added", jobs - duplicates);
        } else if (e.op === "process") {
          if (e.outcome === "completed") this.#count("completed", 1);
          else if (e.outcome === "retry") this.#count("retried", 1);
          else if (e.outcome === "dead") this.#count("dead", 1);
        }
      }
    },
  };

  /** Starts flushing to Redis under `<prefix>:activity:`; `depth` samples the queue's counts at each flush. */
  start(redis: RedisClient, prefix: string, depth: () => Promise<QueueCounts>): void {
    this.#redis = redis;
    this.#head = keyHead(prefix, "activity");
    this.#depth = depth;
    this.#timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.#timer.unref();
  }

  /** Stops the timer and sends what is counted (best effort). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  // One hash tag for every interval, so a read is one pipeline to one node on Cluster too.
  #key(bucket: number): string {
    return `${this.#head}{charts}:${bucket}`;
  }

  #count(name: Counter, n: number): void {
    if (n <= 0) return;
    const bucket = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
    let counts = this.#pending.get(bucket);
    if (counts === undefined) {
      counts = {};
      this.#pending.set(bucket, counts);
    }
    counts[name] = (counts[name] ?? 0) + n;
  }

  /** Adds the counts so far and a depth sample to Redis (one pipeline). Failed counts are kept for the next flush. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    const redis = this.#redis;
    if (redis === undefined || redis.status !== "ready") return;
    const taken = new Map(this.#pending);
    this.#pending.clear();
    const now = Date.now();
    const current = Math.floor(now / BUCKET_MS) * BUCKET_MS;
    const ttl = WINDOW_MS + 2 * BUCKET_MS;
    try {
      const depth = await this.#depth?.();
      const pipeline = redis.pipeline();
      for (const [bucket, counts] of taken) {
        for (const [name, n] of Object.entries(counts)) pipeline.hincrby(this.#key(bucket), name, n);
        if (bucket !== current) pipeline.pexpire(this.#key(bucket), ttl);
      }
      if (depth !== undefined) {
        pipeline.hset(this.#key(current), "waiting", depth.waiting, "delayed", depth.delayed, "active", depth.active);
      }
      pipeline.pexpire(this.#key(current), ttl);
      const replies = await pipeline.exec();
      const failed = replies?.find(([err]) => err !== null)?.[0];
      if (failed) throw failed;
    } catch {
      // Redis is unavailable: keep the counts (they land in their interval once it answers again).
      for (const [bucket, counts] of taken) {
        if (bucket < now - WINDOW_MS) continue;
        for (const [name, n] of Object.entries(counts)) {
          const mine = this.#pending.get(bucket) ?? {};
          mine[name as Counter] = (mine[name as Counter] ?? 0) + (n as number);
          this.#pending.set(bucket, mine);
        }
      }
    }
  }

  /**
   * The charts' series over the window, fleet-wide.
   * @throws RedisUnavailableError when Redis does not answer (ScriptError when it refuses)
   */
  async read(): Promise<ActivitySeries> {
    const redis = this.#redis;
    if (redis === undefined) throw new Error("activity is not started");
    const current = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
    const count = WINDOW_MS / BUCKET_MS;
    const from = current - (count - 1) * BUCKET_MS;
    const fields = [...COUNTERS, ...GAUGES];
    const pipeline = redis.pipeline();
    for (let i = 0; i < count; i++) pipeline.hmget(this.#key(from + i * BUCKET_MS), ...fields);
    const replies = (await pipeline.exec().catch((err: unknown) => Promise.reject(toCoordisError(err)))) ?? [];
    const counters = Object.fromEntries(COUNTERS.map((c) => [c, [] as number[]])) as Record<Counter, number[]>;
    const gauges = Object.fromEntries(GAUGES.map((g) => [g, [] as Array<number | null>])) as Record<
      Gauge,
      Array<number | null>
    >;
    for (let i = 0; i < count; i++) {
      const [err, values] = replies[i] ?? [null, []];
      if (err !== null) throw toCoordisError(err);
      const row = values as Array<string | null>;
      COUNTERS.forEach((c, j) => {
        counters[c].push(Number(row[j] ?? 0));
      });
      GAUGES.forEach((g, j) => {
        const v = row[COUNTERS.length + j];
        gauges[g].push(v === null || v === undefined ? null : Number(v));
      });
    }
    return { bucketMs: BUCKET_MS, from, counters, gauges };
  }
}
