/**
 * Every Coordis primitive run once, end to end, through clients a user built with `new Redis({ ...options })`: the
 * checks behind test/client-options. Each check asserts the results, not only that nothing threw.
 */
import { Cache, RedisSessionStore } from "@coordis/cache";
import { EventLog } from "@coordis/eventlog";
import { Leaderboard } from "@coordis/leaderboard";
import { LockBusyError, Mutex, Redlock, Semaphore } from "@coordis/lock";
import { PubSub } from "@coordis/pubsub";
import { Queue, Worker } from "@coordis/queue";
import { RateLimiter } from "@coordis/ratelimit";
import { waitUntil } from "@coordis/testing";
import type { Redis } from "ioredis";
import { expect } from "vitest";

/** A new client built the user's way; `node` 0 is the main server, 1 and 2 are Redlock's other masters. */
export type MakeClient = (node?: 0 | 1 | 2) => Promise<Redis>;

/** One check: runs a primitive with clients from `make`, entity names made unique by `tag`. */
export type Check = (make: MakeClient, tag: string) => Promise<void>;

export const mutexCheck: Check = async (make, tag) => {
  const redis = await make();
  const a = new Mutex(redis, `m-${tag}`, { ttlMs: 5_000 });
  const b = new Mutex(redis, `m-${tag}`, { ttlMs: 5_000 });
  const lease = await a.acquire();
  expect(await b.tryAcquire()).toBeNull();
  await lease.release();
  const next = await b.acquire({ waitMs: 1_000 });
  expect(next.fence).toBeGreaterThan(lease.fence);
  await next.release();
};

export const semaphoreCheck: Check = async (make, tag) => {
  const redis = await make();
  const sem = new Semaphore(redis, `s-${tag}`, { permits: 2, ttlMs: 5_000 });
  const one = await sem.acquire();
  const two = await sem.acquire();
  await expect(sem.acquire({ waitMs: 50 })).rejects.toBeInstanceOf(LockBusyError);
  await one.release();
  const three = await sem.acquire({ waitMs: 1_000 });
  await two.release();
  await three.release();
};

export const redlockCheck: Check = async (make, tag) => {
  const nodes = [await make(0), await make(1), await make(2)];
  const lock = new Redlock(nodes, `r-${tag}`, { ttlMs: 5_000 });
  const other = new Redlock(nodes, `r-${tag}`, { ttlMs: 5_000 });
  const lease = await lock.acquire();
  await expect(other.acquire({ waitMs: 50 })).rejects.toBeInstanceOf(LockBusyError);
  await lease.release();
  const next = await other.acquire({ waitMs: 1_000 });
  await next.release();
};

export const rateLimitCheck: Check = async (make, tag) => {
  const redis = await make();
  const limiter = new RateLimiter(redis, { rules: [{ limit: 3, windowMs: 60_000 }] });
  const allowed: boolean[] = [];
  for (let i = 0; i < 4; i++) allowed.push((await limiter.consume(`k-${tag}`)).allowed);
  expect(allowed).toEqual([true, true, true, false]);
  const batched = new RateLimiter(redis, {
    rules: [{ limit: 3, windowMs: 60_000, algorithm: "token-bucket" }],
    batch: true,
  });
  const decisions = await Promise.all([0, 1, 2, 3].map(() => batched.consume(`kb-${tag}`)));
  expect(decisions.map((d) => [d.allowed, d.remaining, d.reason])).toEqual([
    [true, 2, "redis"],
    [true, 1, "redis"],
    [true, 0, "redis"],
    [false, 0, "redis"],
  ]);
};

export const leaderboardCheck: Check = async (make, tag) => {
  const redis = await make();
  const board = new Leaderboard<{ n: string }>(redis, `lb-${tag}`, { periods: ["all"] });
  await board.submit("a", 10, { meta: { n: "A" } });
  await board.submitMany([{ member: "b", score: 20 }]);
  expect(await board.top(2)).toEqual([
    { member: "b", score: 20, rank: 1, meta: null },
    { member: "a", score: 10, rank: 2, meta: { n: "A" } },
  ]);
  expect(await board.rank("a")).toEqual({ member: "a", score: 10, rank: 2, count: 2, meta: { n: "A" } });
};

export const pubSubCheck: Check = async (make, tag) => {
  const redis = await make();
  const bus = new PubSub(redis);
  try {
    const got: unknown[] = [];
    const off = await bus.subscribe<{ x: number }>(`ch-${tag}`, (message) => void got.push(message));
    await bus.publish(`ch-${tag}`, { x: 1 });
    await waitUntil("the message", () => got.length > 0, 3_000);
    expect(got).toEqual([{ x: 1 }]);
    await off();
  } finally {
    await bus.close();
  }
};

export const eventLogCheck: Check = async (make, tag) => {
  const redis = await make();
  const log = new EventLog<{ x: number }>(redis, `el-${tag}`);
  const tailed: unknown[] = [];
  const stop = new AbortController();
  const tail = (async () => {
    for await (const entry of log.tail({ from: "start", signal: stop.signal })) {
      tailed.push(entry.data);
      if (tailed.length === 2) return;
    }
  })();
  try {
    const first = await log.append({ x: 1 }, { idempotencyKey: "once" });
    expect(await log.append({ x: 1 }, { idempotencyKey: "once" })).toEqual({ id: first.id, duplicate: true });
    await log.append({ x: 2 });
    expect((await log.read({})).entries.map((e) => e.data)).toEqual([{ x: 1 }, { x: 2 }]);
    await waitUntil("the tail to read both entries", () => tailed.length === 2, 3_000);
    expect(tailed).toEqual([{ x: 1 }, { x: 2 }]);
  } finally {
    stop.abort();
    await tail.catch(() => {});
  }
  const handled: unknown[] = [];
  const consumer = log
    .group("g", { consumer: "c1" })
    .consume(async (entry) => void handled.push(entry.data), { blockMs: 200 });
  try {
    await waitUntil("the group to handle both entries", () => handled.length === 2, 3_000);
    expect(handled).toEqual([{ x: 1 }, { x: 2 }]);
    expect((await log.group("g", { consumer: "c1" }).info())?.pending).toBe(0);
  } finally {
    await consumer.stop();
  }
};

export const cacheCheck: Check = async (make, tag) => {
  const one = new Cache(await make(), { namespace: `c-${tag}`, ttlMs: 60_000 });
  const two = new Cache(await make(), { namespace: `c-${tag}`, ttlMs: 60_000 });
  try {
    await one.ready();
    await two.ready();
    await one.set("k", { v: 1 });
    expect(await two.get("k")).toEqual({ v: 1 }); // now in two's L1
    let loads = 0;
    expect(await two.getOrSet("k2", async () => `loaded ${++loads}`)).toBe("loaded 1");
    expect(await one.getOrSet("k2", async () => `loaded ${++loads}`)).toBe("loaded 1");
    await one.set("k", { v: 2 });
    await waitUntil("two's L1 copy to be invalidated", async () => (await two.get<{ v: number }>("k"))?.v === 2, 3_000);
    expect(two.stats().busHealthy).toBe(true);
  } finally {
    await one.close();
    await two.close();
  }
};

export const sessionCheck: Check = async (make, tag) => {
  const store = new RedisSessionStore(await make(), { prefix: `coordis:sess-${tag}` });
  const call = <T>(f: (cb: (err: unknown, value?: T) => void) => void) =>
    new Promise<T | undefined>((resolve, reject) => f((err, value) => (err ? reject(err) : resolve(value))));
  const session = { cookie: { originalMaxAge: null }, user: "ada" };
  await call((cb) => store.set("sid1", session as never, cb));
  expect(await call((cb) => store.get("sid1", cb))).toMatchObject({ user: "ada" });
  expect(await call<number>((cb) => store.length(cb))).toBe(1);
};

export const queueCheck: Check = async (make, tag) => {
  const queue = new Queue<{ n: number }, number>(await make(), `q-${tag}`);
  const worker = new Worker<{ n: number }, number>(await make(), `q-${tag}`, async (job) => job.data.n * 2);
  try {
    const { id } = await queue.add({ n: 21 });
    // Well under result()'s 5 s fallback look: the finish script's announcement must reach it.
    expect(await queue.result(id, { timeoutMs: 3_000 })).toBe(42);
  } finally {
    await worker.close({ timeoutMs: 2_000 });
    await queue.close();
  }
};

/** Every check, by the name the tests report. */
export const CHECKS: ReadonlyArray<readonly [string, Check]> = [
  ["Mutex", mutexCheck],
  ["Semaphore", semaphoreCheck],
  ["Redlock", redlockCheck],
  ["RateLimiter (incl. batch)", rateLimitCheck],
  ["Leaderboard", leaderboardCheck],
  ["PubSub", pubSubCheck],
  ["EventLog append/read/tail/group", eventLogCheck],
  ["Cache get/set/getOrSet/invalidation", cacheCheck],
  ["RedisSessionStore", sessionCheck],
  ["Queue add/Worker/result", queueCheck],
];
