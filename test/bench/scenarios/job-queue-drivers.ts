/**
 * The libraries the job-queue scenarios drive (@coordis/queue, BullMQ, a raw XADD pipeline), each behind the same
 * small interface, so the measurements in job-queue-measure.ts treat them alike.
 */
import { Queue as BullQueue, Worker as BullWorker } from "bullmq";
import type { Redis } from "ioredis";
import { type CommonOptions, coordisExports } from "../coordis.js";
import type { SetupContext } from "../types.js";

/** Two workers of 50 handlers each, as the performance goal is stated. */
export const WORKERS = 2;
export const CONCURRENCY = 50;

/** `@coordis/queue` as these scenarios use it (structural: the package may not exist yet). */
export interface QueueModule {
  Queue: new (
    redis: unknown,
    name: string,
    options?: CommonOptions,
  ) => {
    add(data: unknown): Promise<{ id: string; duplicate: boolean }>;
    addMany(items: { data: unknown }[]): Promise<unknown[]>;
    close(): Promise<void>;
  };
  Worker: new (
    redis: unknown,
    name: string,
    handler: (job: { data: unknown }) => unknown,
    options?: CommonOptions & { concurrency?: number; schedules?: boolean },
  ) => { close(options?: { timeoutMs?: number }): Promise<void> };
}

/** A queue library driven end to end: jobs are numbered, `onStart(n)` fires when a handler starts job n. */
export interface JobQueueDriver {
  /** Starts {@link WORKERS} workers on a fresh, empty queue; each handler calls `onStart` and returns `n` (kept). */
  start(onStart: (n: number) => void): Promise<void>;
  /** Adds job `n`. */
  add(n: number): Promise<unknown>;
  /** Stops the workers (jobs not started stay behind; the next start uses a fresh queue). */
  stop(): Promise<void>;
  /** Untimed, between measurements: drops the keys of the queues used so far. */
  clean(): Promise<void>;
}

/** A producer of bulk adds: `addBulk(from, count)` adds jobs `from .. from + count - 1` in one call. */
export interface BulkDriver {
  addBulk(from: number, count: number): Promise<unknown>;
  /** Untimed: a fresh queue, the old one's keys dropped. */
  reset(): Promise<void>;
  /** Closes what the driver opened. */
  close?(): Promise<void>;
}

/** Deletes every key under `prefix` (untimed clean-up between rounds; DEL, not UNLINK: freeing the memory in the background would cost Redis CPU inside the next measurement). */
export async function dropKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1_000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}

export async function coordisQueue(): Promise<QueueModule> {
  return coordisExports<QueueModule>("queue", ["Queue", "Worker"]);
}

export function coordisDriver(ctx: SetupContext, mod: QueueModule): JobQueueDriver {
  const producer = ctx.client();
  const workerConnections = Array.from({ length: WORKERS }, () => ctx.client());
  let round = 0;
  let name = "";
  let queue: InstanceType<QueueModule["Queue"]> | undefined;
  let workers: InstanceType<QueueModule["Worker"]>[] = [];
  return {
    async start(onStart) {
      name = `jobs-${round++}`;
      queue = new mod.Queue(producer, name, { prefix: ctx.prefix });
      workers = workerConnections.map(
        (conn) =>
          new mod.Worker(
            conn,
            name,
            (job) => {
              const n = (job.data as { n: number }).n;
              onStart(n);
              return n;
            },
            { prefix: ctx.prefix, concurrency: CONCURRENCY, schedules: false },
          ),
      );
    },
    add(n) {
      if (queue === undefined) throw new Error("queue not started");
      return queue.add({ n });
    },
    async stop() {
      await Promise.all(workers.map((w) => w.close({ timeoutMs: 0 })));
      await queue?.close();
      workers = [];
      queue = undefined;
    },
    clean: () => dropKeys(producer, ctx.prefix),
  };
}

export function bullmqDriver(ctx: SetupContext): JobQueueDriver {
  // BullMQ wants maxRetriesPerRequest: null on its connections (workers issue blocking commands); each worker gets
  // its own connection (BullMQ duplicates it for its blocking reads), as the Coordis workers do.
  const connection = ctx.client(ctx.single, { maxRetriesPerRequest: null });
  const workerConnections = Array.from({ length: WORKERS }, () =>
    ctx.client(ctx.single, { maxRetriesPerRequest: null }),
  );
  let round = 0;
  let queue: BullQueue | undefined;
  let workers: BullWorker[] = [];
  return {
    async start(onStart) {
      const name = `jobs-${round++}`;
      // BullMQ's defaults: completed jobs and their return values are kept.
      queue = new BullQueue(name, { connection, prefix: ctx.prefix });
      workers = workerConnections.map((conn) => {
        const w = new BullWorker(
          name,
          async (job) => {
            const n = (job.data as { n: number }).n;
            onStart(n);
            return n;
          },
          { connection: conn, prefix: ctx.prefix, concurrency: CONCURRENCY },
        );
        w.on("error", () => {});
        return w;
      });
      await Promise.all([queue.waitUntilReady(), ...workers.map((w) => w.waitUntilReady())]);
    },
    add(n) {
      if (queue === undefined) throw new Error("queue not started");
      return queue.add("job", { n });
    },
    async stop() {
      await Promise.all(workers.map((w) => w.close(true)));
      await queue?.close();
      workers = [];
      queue = undefined;
    },
    clean: () => dropKeys(connection, ctx.prefix),
  };
}

/** A pipeline of `count` XADD to one stream: the floor of writing that many entries. */
export function rawXaddBulk(ctx: SetupContext): BulkDriver {
  const redis = ctx.client();
  let round = 0;
  let key = `${ctx.prefix}:s${round}`;
  return {
    addBulk(from, count) {
      const p = redis.pipeline();
      for (let i = 0; i < count; i++) p.xadd(key, "*", "n", String(from + i));
      return p.exec();
    },
    async reset() {
      await dropKeys(redis, ctx.prefix);
      key = `${ctx.prefix}:s${++round}`;
    },
  };
}

/** BullMQ's `Queue.addBulk`. */
export async function bullmqBulk(ctx: SetupContext): Promise<BulkDriver> {
  const connection = ctx.client(ctx.single, { maxRetriesPerRequest: null });
  let round = 0;
  let queue = new BullQueue(`bulk-${round}`, { connection, prefix: ctx.prefix });
  await queue.waitUntilReady();
  return {
    addBulk(from, count) {
      return queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: "job", data: { n: from + i } })));
    },
    async reset() {
      await queue.close();
      await dropKeys(connection, ctx.prefix);
      queue = new BullQueue(`bulk-${++round}`, { connection, prefix: ctx.prefix });
      await queue.waitUntilReady();
    },
    close: () => queue.close(),
  };
}

/** @coordis/queue's `Queue.addMany`. */
export function coordisBulk(ctx: SetupContext, mod: QueueModule): BulkDriver {
  const redis = ctx.client();
  let round = 0;
  let queue = new mod.Queue(redis, `bulk-${round}`, { prefix: ctx.prefix });
  return {
    addBulk(from, count) {
      return queue.addMany(Array.from({ length: count }, (_, i) => ({ data: { n: from + i } })));
    },
    async reset() {
      await dropKeys(redis, ctx.prefix);
      queue = new mod.Queue(redis, `bulk-${++round}`, { prefix: ctx.prefix });
    },
  };
}
