import { setTimeout as sleep } from "node:timers/promises";
import { Cache } from "@coordis/cache";
import { connect, DurabilityError, type RedisClient } from "@coordis/core";
import { Leaderboard } from "@coordis/leaderboard";
import { runOncePerTick, type TickResult } from "@coordis/lock";
import { Queue, Worker } from "@coordis/queue";
import { RateLimiter } from "@coordis/ratelimit";
import {
  eventually,
  type ObserverRecorder,
  type RedisSentinelSetup,
  recordObserver,
  startRedisSentinel,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();
/** The rate limit: 20 per window, a window (365 days) no test run can cross. */
const LIMIT = 20;
const WAIT_MS = 15_000;

/**
 * One Sentinel failover under load for the rate limiter, the leaderboard, the cache, the queue's add and
 * runOncePerTick, on one
 * topology: a master, one replica replicating through a fault proxy, one Sentinel (quorum 1, down-after 1 s), the
 * clients connected through Sentinel as the least-privilege user. The scenario runs once (beforeAll):
 *
 * 1. synced: writes confirmed by the replica (the queue's `durability` setting; for the others, which have no such
 *    setting, the application's own `WAIT 1` on the same connection right after the write);
 * 2. cut: replication stops reaching the replica (blackhole) while the primary keeps acknowledging writes;
 * 3. the primary is SIGKILLed while the loads run, and Sentinel promotes the replica.
 *
 * Each test then checks what survived: every confirmed write, and none of the writes acknowledged during the cut
 * (the asynchronous-replication caveat, shown to be real).
 */
describe("primitives across a Sentinel failover of a primary killed under load", () => {
  let setup: RedisSentinelSetup;
  const clients: RedisClient[] = [];
  const client = (commandTimeoutMs = 2_000) => {
    const c = connect(setup.url, { commandTimeoutMs });
    clients.push(c);
    return c;
  };
  let tickClient: RedisClient;
  /** How many times each tick of the job "nightly" ran. */
  const tickRuns = new Map<number, number>();
  /** One call for tick `n` (with the durability setting when `durable`): its result, or what it rejected with. */
  const tick = (n: number, durable: boolean): Promise<unknown> =>
    runOncePerTick(tickClient, "nightly", n, () => void tickRuns.set(n, (tickRuns.get(n) ?? 0) + 1), {
      prefix,
      ...(durable ? { durability: { replicas: 1, timeoutMs: 800 } } : {}),
    }).catch((e: unknown) => e);
  const tickBefore: Record<string, unknown> = {};
  /** The application's durability for primitives without the setting: WAIT right behind the write, same client. */
  const confirm = async (redis: RedisClient) => expect(await redis.call("WAIT", 1, 1_000)).toBe(1);
  let killed = false;
  let failedOver = false;

  // Rate limiter.
  let limiter: RateLimiter;
  const rl = { synced: 0, cut: 0, afterKill: 0, loadErrors: 0 };
  // Leaderboard.
  let board: Leaderboard;
  const players = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ member: `p${i}`, score: 100 + 10 * i }));
  // Cache: two instances (two replicas of a service), each with its own client.
  let cacheA: Cache;
  let cacheB: Cache;
  let observerA: ObserverRecorder;
  const cacheLoad = { duringOutage: 0, afterFailover: 0, rejected: 0, slowestMs: 0 };
  /** Cache A's client gives up on a command after this long, well within the outage (≥ down-after, 1 s). */
  const CACHE_COMMAND_TIMEOUT_MS = 400;
  // Queue.
  let queue: Queue<number>;
  let plainQueue: Queue<number>;
  const adds = { acked: [] as string[], refused: [] as string[], failed: [] as string[], lost: [] as string[] };

  const settled = () => adds.acked.length + adds.refused.length + adds.failed.length;
  const until = (what: string, check: () => boolean | Promise<boolean>) =>
    waitUntil(what, check, { timeoutMs: WAIT_MS, intervalMs: 20 });

  beforeAll(async () => {
    setup = await startRedisSentinel({
      replicas: 1,
      proxiedReplication: true,
      downAfterMs: 1_000,
      leastPrivilege: true,
    });
    const rlClient = client();
    const boardClient = client();
    const queueClient = client();
    tickClient = client();
    limiter = new RateLimiter(rlClient, {
      prefix,
      rules: [{ limit: LIMIT, windowMs: 365 * 24 * 3_600_000 }],
    });
    board = new Leaderboard(boardClient, "season", { prefix });
    observerA = recordObserver();
    const cacheOptions = { prefix, namespace: "fo", ttlMs: 60_000, l1: { ttlMs: 60_000 }, checkEvictionPolicy: false };
    const cacheClientB = client();
    cacheA = new Cache(client(CACHE_COMMAND_TIMEOUT_MS), { ...cacheOptions, observer: observerA });
    cacheB = new Cache(cacheClientB, cacheOptions);
    queue = new Queue<number>(queueClient, "jobs", { prefix, durability: { replicas: 1, timeoutMs: 800 } });
    plainQueue = new Queue<number>(queueClient, "jobs", { prefix });
    await Promise.all([cacheA.ready(), cacheB.ready()]);

    // 1. Synced.
    for (let i = 0; i < LIMIT / 2; i++) if ((await limiter.consume("k")).allowed) rl.synced++;
    await confirm(rlClient);
    await board.submitMany(players);
    await confirm(boardClient);
    await cacheB.set("item", "v1");
    await confirm(cacheClientB);
    expect(await cacheA.get("item")).toBe("v1"); // now in cache A's L1
    tickBefore.durable = await tick(1, true); // claim confirmed, then run
    // Durable adds run from here until the failover; a few are confirmed before the cut.
    const addLoop = (async () => {
      for (let n = 0; !failedOver; n++) {
        const id = `d${n}`;
        try {
          await queue.add(n, { id });
          adds.acked.push(id);
        } catch (err) {
          (err instanceof DurabilityError ? adds.refused : adds.failed).push(id);
        }
        await sleep(10); // load pacing
      }
    })();
    await until("5 durable adds confirmed", () => adds.acked.length >= 5);

    // 2. Cut: acknowledged by the primary, never replicated.
    setup.links[0]?.blackhole();
    for (let i = 0; i < LIMIT; i++) if ((await limiter.consume("k")).allowed) rl.cut++;
    await board.submit("p0", 1_000); // a new best for p0
    await board.submit("late", 500);
    await cacheB.set("item", "v2");
    // cacheA drops its L1 copy on the invalidation and reads v2 from the primary into its L1.
    await until("cache A to serve v2", async () => (await cacheA.get("item")) === "v2");
    tickBefore.plain = await tick(2, false); // claimed, run and recorded on the primary only
    tickBefore.refused = await tick(3, true);
    for (let n = 0; n < 3; n++) {
      await plainQueue.add(n, { id: `p${n}` });
      adds.lost.push(`p${n}`);
    }
    const settledAtCut = settled();
    await until("a durable add sent during the cut to settle", () => settled() > settledAtCut + 1);

    // 3. Kill the primary while the rate limiter, cache and queue loads run.
    const rlLoop = (async () => {
      for (;;) {
        const decision = await limiter.consume("k").catch(() => undefined);
        if (decision === undefined) rl.loadErrors++;
        else if (decision.allowed) rl.afterKill++;
        else if (failedOver) return; // the promoted primary's window is full again
        await sleep(5); // load pacing
      }
    })();
    const cacheLoop = (async () => {
      for (let n = 0; !failedOver || cacheLoad.afterFailover < 20; n++) {
        const started = performance.now();
        const value = await cacheA.getOrSet(`load:${n % 5}`, () => n % 5).catch(() => undefined);
        if (killed) cacheLoad.slowestMs = Math.max(cacheLoad.slowestMs, performance.now() - started);
        if (value === undefined) cacheLoad.rejected++;
        else if (failedOver) cacheLoad.afterFailover++;
        else if (killed) cacheLoad.duringOutage++;
        await sleep(5); // load pacing
      }
    })();
    const gapsBefore = observerA.events.length;
    await setup.master.kill();
    killed = true;
    await setup.waitForFailover(setup.master);
    failedOver = true;
    await Promise.all([addLoop, rlLoop, cacheLoop]);
    // Cache A's subscription is back on the promoted primary.
    await observerA.waitForEvent((e) => e.type === "gap" && e.attributes?.reason === "resubscribed", {
      from: gapsBefore,
      timeoutMs: WAIT_MS,
    });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([cacheA?.close(), cacheB?.close(), queue?.close(), plainQueue?.close()]);
    for (const c of clients.splice(0)) c.disconnect();
    await setup?.stop();
  });

  it("rate limit: the confirmed count survives, the count acknowledged during the cut is lost; admitted ≤ 2 × limit", () => {
    expect(rl.synced).toBe(LIMIT / 2);
    expect(rl.cut).toBe(LIMIT / 2); // the window filled up on the old primary, the rest rejected
    // The promoted replica knew only the confirmed half: it admits the other half again.
    expect(rl.afterKill).toBe(LIMIT / 2);
    const admitted = rl.synced + rl.cut + rl.afterKill;
    expect(admitted).toBeGreaterThan(LIMIT);
    expect(admitted).toBeLessThanOrEqual(2 * LIMIT);
  });

  it("leaderboard: confirmed submits survive with consistent ranks; submits acknowledged during the cut are lost", async () => {
    const top = await board.top(20);
    expect(top.map((e) => [e.member, e.score])).toEqual(
      [...players].reverse().map((p) => [p.member, p.score]), // p0 at its confirmed 100, not the lost 1 000
    );
    expect(await board.count()).toBe(players.length);
    expect(await board.rank("late")).toBeNull();
    for (const [i, entry] of top.entries()) {
      expect(entry.rank).toBe(i + 1);
      expect(await board.rank(entry.member)).toMatchObject({ rank: i + 1, score: entry.score, count: players.length });
    }
  });

  it("cache: served through the failover without a rejection; after it no instance keeps a value the new primary lost", async () => {
    // Every call resolved (from L1, Redis or its loader), none waited much past the client's command timeout, and
    // some were answered while there was no primary at all.
    expect(cacheLoad.rejected).toBe(0);
    expect(cacheLoad.slowestMs).toBeLessThan(CACHE_COMMAND_TIMEOUT_MS + 600);
    expect(cacheLoad.duringOutage).toBeGreaterThan(0);
    expect(cacheLoad.afterFailover).toBeGreaterThanOrEqual(20);
    // The acknowledged set of v2 was lost with the old primary: both instances serve v1 again (the caveat). Cache A
    // had v2 in its L1 (60 s L1 TTL): the connection gap of the failover dropped it.
    expect(await eventually("cache B to read the item", () => cacheB.get<string>("item"), WAIT_MS)).toBe("v1");
    // (A's breaker may still be open after the outage: get() then answers undefined, without asking Redis.)
    expect(await eventually("cache A to read the item", () => cacheA.get<string>("item"), WAIT_MS)).toBe("v1");
  });

  it("runOncePerTick: a confirmed claim is never run again; without the setting the cut's tick runs twice", async () => {
    expect(tickBefore.durable).toMatchObject({ ran: true });
    expect(tickBefore.plain).toMatchObject({ ran: true });
    // The claim the replica could not confirm: fn not called.
    expect(tickBefore.refused).toBeInstanceOf(DurabilityError);
    expect(tickRuns.get(3)).toBeUndefined();
    // After the failover, one caller per tick (another replica arriving late).
    const after = await Promise.all([1, 2, 3].map((n) => tick(n, false)));
    // Tick 1: its claim survived (its finish may not have: "ok" or "running"), so it does not run again.
    expect((after[0] as TickResult<void>).ran).toBe(false);
    // Tick 2: its record was lost with the old primary, so it runs a second time (the caveat).
    expect(after[1]).toMatchObject({ ran: true });
    // Tick 3: never claimed anywhere, it runs now, once.
    expect(after[2]).toMatchObject({ ran: true });
    expect(Object.fromEntries(tickRuns)).toEqual({ 1: 1, 2: 2, 3: 1 });
  });

  it("queue: every add confirmed by the durability setting is processed after the failover; plain adds of the cut are lost", async () => {
    expect(adds.acked.length).toBeGreaterThanOrEqual(5);
    const processed = new Set<string>();
    const worker = new Worker<number, void>(client(), "jobs", async (job) => void processed.add(job.id), { prefix });
    try {
      await until("every confirmed add processed", () => adds.acked.every((id) => processed.has(id)));
    } finally {
      await worker.close({ timeoutMs: 5_000 });
    }
    // The adds sent during the cut were refused, not acknowledged; plain adds acknowledged then are gone.
    expect(adds.refused.length).toBeGreaterThanOrEqual(1);
    for (const id of adds.lost) {
      expect(await plainQueue.get(id), id).toBeNull();
      expect(processed.has(id), id).toBe(false);
    }
  });
});
