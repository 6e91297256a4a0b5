import { Cache } from "@coordis/cache";
import { connect, type RedisClient } from "@coordis/core";
import { type Consumer, EventLog } from "@coordis/eventlog";
import { coordis } from "@coordis/fastify";
import { Leaderboard } from "@coordis/leaderboard";
import { type Lease, Mutex } from "@coordis/lock";
import { PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import { Queue, Worker } from "@coordis/queue";
import { RateLimiter } from "@coordis/ratelimit";
import {
  EventRecorder,
  type ObserverRecorder,
  type RedisSentinelSetup,
  type RedisServer,
  recordObserver,
  startRedisSentinel,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appConnections, BLOCK_MS, type Probe, probe, replicaCaughtUp } from "../failover-support.js";

const prefix = testPrefix("sentinel-frozen");

/** How long after the promotion each primitive has to work again ("a few seconds"). */
const RECOVERY_MS = 4_000;
function recovered<T>(p: Probe<T> | undefined): T {
  expect(p, "probe ran").toBeDefined();
  if (p === undefined || !p.ok) throw new Error(`never recovered: ${String(p === undefined ? "" : p.error)}`);
  expect(p.afterMs, "ms after the promotion").toBeLessThan(RECOVERY_MS);
  return p.value;
}

/**
 * One Sentinel topology (a master, one replica, one Sentinel with down-after 1 s; clients as the least-privilege user
 * through `redis+sentinel://`). Every primitive is set up and used, its blocking readers and subscribers parked on the
 * master; the master is then FROZEN (SIGSTOP) and stays frozen after Sentinel promotes the replica. Every primitive is
 * then probed at once (beforeAll), each recording how long after the promotion it first worked again; the tests check
 * those records. The last test resumes the old master (it comes back as a replica) and checks nothing goes wrong.
 */
describe("every primitive through Sentinel when the master freezes and stays frozen after the promotion", () => {
  let setup: RedisSentinelSetup;
  let frozen: RedisServer;
  let promoted: RedisServer;
  const clients: RedisClient[] = [];
  const client = (commandTimeoutMs = 1_000) => {
    const c = connect(setup.url, { commandTimeoutMs });
    clients.push(c);
    return c;
  };
  const closers: (() => Promise<unknown>)[] = [];

  // pub/sub
  let bus: PubSub;
  let publisher: PubSub;
  const busResubscribed = new EventRecorder<ResubscribedInfo>();
  const busResubscribedAt: number[] = [];
  let frozenAt = 0;
  let promotedAt = 0;
  const busMessages: number[] = [];
  let busSent = 0;
  let busProbe: Probe<number> | undefined;
  // eventlog
  let log: EventLog<{ n: number }>;
  let consumer: Consumer;
  const logHandled: number[] = [];
  let logProbe: Probe<true> | undefined;
  const tailSeen: number[] = [];
  let tailEnded: unknown;
  const tailAbort = new AbortController();
  // queue: an idle worker, and a result() waiting across the failover
  let queue: Queue<{ n: number }, string>;
  let worker: Worker<{ n: number }, string>;
  const jobsRun: string[] = [];
  let jobProbe: Probe<true> | undefined;
  let resultQueue: Queue<{ n: number }, string>;
  let resultWaiter: Promise<{ value: string; at: number } | { error: unknown }>;
  let resultWorker: Worker<{ n: number }, string> | undefined;
  let resultCompletedAt = 0;
  // queue: a job whose handler runs across the freeze and the promotion
  let longQueue: Queue<{ n: number }, string>;
  const longRuns: string[] = [];
  const longObserver = recordObserver();
  let finishLong: () => void = () => {};
  let finishDuringFreeze: () => void = () => {};
  // ratelimit, lock, leaderboard
  let limiter: RateLimiter;
  let rlProbe: Probe<true> | undefined;
  let mutex: Mutex;
  let fenceBefore = 0;
  let heldBefore: Lease;
  let lockProbe: Probe<Lease> | undefined;
  let heldElsewhere: Lease | null | "error" = "error";
  let board: Leaderboard;
  let boardProbe: Probe<true> | undefined;
  // cache
  let cacheA: Cache;
  let cacheB: Cache;
  let observerA: ObserverRecorder;
  let cacheProbe: Probe<true> | undefined;
  let cacheReadRightAfterSet: unknown;
  // fastify
  let app: FastifyInstance;
  const httpWhileFrozen: number[] = [];
  let httpProbe: Probe<true> | undefined;

  beforeAll(async () => {
    setup = await startRedisSentinel({
      replicas: 1,
      downAfterMs: 1_000,
      leastPrivilege: true,
    });
    frozen = setup.master;
    const replica = setup.replicas[0];
    if (replica === undefined) throw new Error("no replica");

    // pub/sub: a subscriber parked on the master, a publisher on another client.
    bus = new PubSub(client(), { prefix });
    publisher = new PubSub(client(), { prefix });
    bus.on("resubscribed", busResubscribed.record);
    bus.on("resubscribed", () => busResubscribedAt.push(performance.now()));
    closers.push(
      () => bus.close(),
      () => publisher.close(),
    );
    await bus.subscribe<number>("news", (n) => void busMessages.push(n));
    await publisher.publish("news", busSent++);
    await waitUntil("the first message", () => busMessages.length === 1);

    // eventlog: a consumer blocked in XREADGROUP on the master, for much longer than the test.
    log = new EventLog<{ n: number }>(client(), "orders", { prefix });
    consumer = log
      .group("billing", { consumer: "c1" })
      .consume((entry) => void logHandled.push(entry.data.n), { blockMs: BLOCK_MS, claimIntervalMs: 60_000 });
    closers.push(() => consumer.stop({ timeoutMs: 2_000 }));
    await log.append({ n: 0 }, { idempotencyKey: "order-0" });
    await waitUntil("the first entry handled", () => logHandled.length === 1);
    // A tail waiting in XREAD BLOCK on the master, from the end of the log (after order-0).
    void (async () => {
      for await (const entry of log.tail({ from: "end", blockMs: BLOCK_MS, signal: tailAbort.signal })) {
        tailSeen.push(entry.data.n);
      }
    })().then(
      () => {
        tailEnded = "ended";
      },
      (error: unknown) => {
        tailEnded = error;
      },
    );
    closers.push(async () => tailAbort.abort());

    // queue: a worker waiting for jobs on its blocking connection; a result() waiting for a job nobody runs yet.
    queue = new Queue<{ n: number }, string>(client(), "jobs", { prefix });
    worker = new Worker<{ n: number }, string>(
      client(),
      "jobs",
      (job) => {
        jobsRun.push(job.id);
        return `done ${job.data.n}`;
      },
      { prefix, blockMs: BLOCK_MS },
    );
    closers.push(
      () => worker.close({ timeoutMs: 2_000 }),
      () => queue.close(),
    );
    await queue.add({ n: 0 }, { id: "job-0" });
    expect(await queue.result("job-0", { timeoutMs: 10_000 })).toBe("done 0");
    resultQueue = new Queue<{ n: number }, string>(client(), "results", { prefix });
    closers.push(() => resultQueue.close());
    await resultQueue.add({ n: 1 }, { id: "r-1" });
    resultWaiter = resultQueue.result("r-1", { timeoutMs: 40_000 }).then(
      (value) => ({ value, at: performance.now() }),
      (error: unknown) => ({ error }),
    );

    // queue: a job still running when the master freezes; it finishes after the promotion.
    longQueue = new Queue<{ n: number }, string>(client(), "long", { prefix });
    const until = new Promise<void>((resolve) => {
      finishLong = resolve;
    });
    const duringFreeze = new Promise<void>((resolve) => {
      finishDuringFreeze = resolve;
    });
    const longWorker = new Worker<{ n: number }, string>(
      client(),
      "long",
      async (job) => {
        longRuns.push(job.id);
        await (job.data.n === 8 ? duringFreeze : until);
        return `done ${job.data.n}`;
      },
      { prefix, leaseMs: 12_000, concurrency: 2, observer: longObserver },
    );
    closers.push(
      () => longWorker.close({ timeoutMs: 2_000 }),
      () => longQueue.close(),
    );
    await longQueue.add({ n: 7 }, { id: "long-7" });
    await longQueue.add({ n: 8 }, { id: "long-8" });
    await waitUntil("the long jobs to start", () => longRuns.length === 2);

    // ratelimit, lock, leaderboard.
    limiter = new RateLimiter(client(), { prefix, rules: [{ limit: 1_000, windowMs: 3_600_000 }] });
    expect((await limiter.consume("k")).allowed).toBe(true);
    mutex = new Mutex(client(), "m", { prefix, ttlMs: 10_000 });
    const first = await mutex.tryAcquire();
    if (first === null) throw new Error("mutex busy");
    fenceBefore = first.fence;
    await first.release();
    const held = await new Mutex(client(), "held", { prefix, ttlMs: 60_000 }).tryAcquire();
    if (held === null) throw new Error("held mutex busy");
    heldBefore = held;
    closers.push(() => held.release());
    board = new Leaderboard(client(), "season", { prefix });
    await board.submit("before", 10);

    // cache: B writes, A holds the value in its L1 and must learn of B's next write.
    observerA = recordObserver();
    const cacheOptions = { prefix, namespace: "c", ttlMs: 60_000, l1: { ttlMs: 60_000 }, checkEvictionPolicy: false };
    cacheA = new Cache(client(), { ...cacheOptions, observer: observerA });
    cacheB = new Cache(client(), cacheOptions);
    closers.push(
      () => cacheA.close(),
      () => cacheB.close(),
    );
    await Promise.all([cacheA.ready(), cacheB.ready()]);
    await cacheB.set("item", "v1");
    expect(await cacheA.get("item")).toBe("v1");

    // fastify: the plugin opens its own connection from the URL.
    app = Fastify();
    await app.register(coordis, {
      url: setup.url,
      prefix,
      metrics: { registry: new Registry() },
      rateLimit: { rules: [{ name: "burst", limit: 1_000, windowMs: 3_600_000 }] },
    });
    app.get("/limited", { config: { coordis: { rateLimit: true } } }, async () => ({ ok: true }));
    await app.ready();
    closers.push(() => app.close());
    expect((await app.inject({ method: "GET", url: "/limited" })).statusCode).toBe(200);

    // Everything written so far is on the replica; the blocking readers are parked on the master.
    await replicaCaughtUp(frozen, replica);
    await waitUntil(
      "the consumer, the tail and the worker blocked on the master",
      async () =>
        (await appConnections(frozen, "xreadgroup")).some((l) => / flags=b/.test(l)) &&
        (await appConnections(frozen, "xread")).filter((l) => / flags=b/.test(l)).length === 2,
      10_000,
    );

    frozen.pause();
    frozenAt = performance.now();
    finishDuringFreeze(); // its completion goes to the frozen master
    const failover = setup.waitForFailover(frozen, 30_000);
    // While the master is frozen and nothing was promoted yet, the plugin answers 503.
    httpWhileFrozen.push((await app.inject({ method: "GET", url: "/limited" })).statusCode);
    promoted = await failover;
    const since = performance.now();
    promotedAt = since;
    finishLong();

    const [bus_, log_, job_, rl_, lock_, board_, cache_, http_] = await Promise.all([
      probe(since, "a message published after the promotion", async () => {
        const n = busSent++;
        await publisher.publish("news", n);
        await waitUntil("the message", () => busMessages.includes(n), 300);
        return n;
      }),
      (async () => {
        // Appended with an idempotency key: an append that timed out is retried without appending twice.
        const appended = await probe(since, "an append after the promotion", () =>
          log.append({ n: 1 }, { idempotencyKey: "order-1" }).then(() => true as const),
        );
        if (!appended.ok) return appended;
        return probe(since, "the blocked consumer to handle it", async () => logHandled.includes(1) || undefined);
      })(),
      (async () => {
        const added = await probe(since, "an add after the promotion", () =>
          queue.add({ n: 1 }, { id: "job-1" }).then(() => true as const),
        );
        if (!added.ok) return added;
        return probe(since, "the idle worker to run it", async () => jobsRun.includes("job-1") || undefined);
      })(),
      probe(since, "a consume after the promotion", async () => (await limiter.consume("k")).allowed || undefined),
      (async () => {
        const acquired = await probe(since, "an acquire after the promotion", async () => {
          return (await mutex.tryAcquire()) ?? undefined;
        });
        // The lease held before the freeze is on the promoted replica: the lock is still taken there.
        heldElsewhere = await new Mutex(client(), "held", { prefix, ttlMs: 60_000 })
          .tryAcquire()
          .catch(() => "error" as const);
        return acquired;
      })(),
      probe(since, "a submit after the promotion", () => board.submit("after", 20).then(() => true as const)),
      (async () => {
        const set = await probe(since, "a cache set after the promotion", () =>
          cacheB.set("item", "v2").then(() => true as const),
        );
        cacheReadRightAfterSet = await cacheA.get("item");
        if (!set.ok) return set;
        return probe(since, "cache A to serve v2", async () => (await cacheA.get("item")) === "v2" || undefined);
      })(),
      probe(since, "a 2xx answer after the promotion", async () => {
        const res = await app.inject({ method: "GET", url: "/limited" });
        return res.statusCode < 300 || undefined;
      }),
      (async () => {
        // The job r-1 is run only now, on the promoted master: result() must hear of it.
        resultWorker = new Worker<{ n: number }, string>(
          client(),
          "results",
          (job) => {
            resultCompletedAt = performance.now();
            return `done ${job.data.n}`;
          },
          { prefix },
        );
        closers.push(() => resultWorker?.close({ timeoutMs: 2_000 }) ?? Promise.resolve());
      })(),
    ]);
    busProbe = bus_;
    logProbe = log_;
    jobProbe = job_;
    rlProbe = rl_;
    lockProbe = lock_;
    boardProbe = board_;
    cacheProbe = cache_;
    httpProbe = http_;
  }, 120_000);

  afterAll(async () => {
    if (frozen?.paused) frozen.resume();
    await Promise.allSettled(closers.map((close) => close()));
    for (const c of clients.splice(0)) c.disconnect();
    await setup?.stop();
  });

  it("the old master is still frozen while the primitives are probed, and the replica was promoted", () => {
    expect(frozen.paused).toBe(true);
    expect(promoted).not.toBe(frozen);
  });

  it("pub/sub: the subscriber resubscribes on the promoted master and messages published after it arrive", async () => {
    recovered(busProbe);
    expect(busResubscribed.items.length).toBeGreaterThanOrEqual(1);
    // Resubscribed because the client followed the failover, not because its heartbeat (every 5 s) found the frozen
    // connection dead, which takes 5 to 10 s after the freeze.
    const resubscribedAt = busResubscribedAt.find((t) => t > frozenAt) ?? Number.POSITIVE_INFINITY;
    expect(resubscribedAt - promotedAt).toBeLessThan(3_000);
    const admin = promoted.adminClient();
    try {
      const [, count] = (await admin.call("PUBSUB", "NUMSUB", bus.redisChannel("news"))) as [string, number];
      expect(Number(count)).toBe(1);
    } finally {
      admin.disconnect();
    }
    // Every message published from now on arrives, once, in order.
    const from = busSent;
    for (let i = 0; i < 5; i++) await publisher.publish("news", busSent++);
    await waitUntil("five more messages", () => busMessages.filter((n) => n >= from).length === 5, 3_000);
    expect(busMessages.filter((n) => n >= from)).toEqual([from, from + 1, from + 2, from + 3, from + 4]);
  });

  it("eventlog: the consumer blocked in XREADGROUP on the frozen master gets an entry appended to the promoted one", () => {
    recovered(logProbe);
    expect(logHandled).toEqual([0, 1]);
  });

  it("eventlog: a tail waiting in XREAD BLOCK on the frozen master yields the entry appended to the promoted one", async () => {
    recovered(logProbe);
    await waitUntil("the tail to yield entry 1", () => tailSeen.includes(1), RECOVERY_MS);
    expect(tailSeen).toEqual([1]);
    expect(tailEnded).toBeUndefined();
  });

  // The worker's idle XREAD BLOCK must fail when its connection closes: the client follows the failover (its
  // connection to the frozen master is dropped), but a command in flight on a dropped connection is never answered (no
  // re-sending after a reconnect), so the read would wait for its command timeout, blockMs + 5 s (35 s here), before
  // the worker looked at the queue again (as after any reconnect, a plain restart of a standalone server too).
  it("queue: the idle worker runs a job added after the promotion", () => {
    recovered(jobProbe);
    expect(jobsRun).toEqual(["job-0", "job-1"]);
  });

  it("queue: result() waiting since before the freeze resolves with a job completed on the promoted master", async () => {
    const outcome = await resultWaiter;
    if ("error" in outcome) throw outcome.error;
    expect(outcome.value).toBe("done 1");
    expect(resultCompletedAt).toBeGreaterThan(0);
    // Heard from the announcement (or the reconnect's look), not left to the 5 s check.
    expect(outcome.at - resultCompletedAt).toBeLessThan(2_500);
  });

  it("queue: jobs running across the freeze (one finishing during it, one after the promotion) complete once each", async () => {
    expect(await longQueue.result("long-7", { timeoutMs: 10_000 })).toBe("done 7");
    expect(await longQueue.result("long-8", { timeoutMs: 10_000 })).toBe("done 8");
    expect([...longRuns].sort()).toEqual(["long-7", "long-8"]);
    await waitUntil("both deliveries reported", () => longObserver.ops.filter((o) => o.op === "process").length >= 2);
    const outcomes = longObserver.ops.filter((o) => o.op === "process").map((o) => o.outcome);
    expect(outcomes).toEqual(["completed", "completed"]);
    expect(longObserver.events.filter((e) => e.type === "lease-lost")).toEqual([]);
  });

  it("ratelimit: consume succeeds again on the promoted master", async () => {
    recovered(rlProbe);
    // The count acknowledged before the freeze was replicated: 1 before + what the probe spent + this one.
    const decision = await limiter.consume("k");
    expect(decision.allowed).toBe(true);
    expect(decision.remaining).toBeLessThanOrEqual(1_000 - 3);
  });

  it("lock: a Mutex acquires again with a higher fence; a lease held before the freeze still holds the lock", async () => {
    const lease = recovered(lockProbe);
    expect(lease.fence).toBeGreaterThan(fenceBefore);
    await lease.release();
    expect(heldElsewhere).toBeNull();
    expect(heldBefore.fence).toBeGreaterThan(0);
  });

  it("leaderboard: submits succeed again and what was submitted before the freeze is there", async () => {
    recovered(boardProbe);
    const top = await board.top(10);
    expect(top.map((e) => [e.member, e.score])).toEqual([
      ["after", 20],
      ["before", 10],
    ]);
  });

  it("cache: sets succeed again and the other instance drops its L1 copy (no stale read once the set resolved)", () => {
    recovered(cacheProbe);
    expect(observerA.events.some((e) => e.type === "gap")).toBe(true);
    expect(cacheReadRightAfterSet).toBe("v2");
  });

  it("fastify: 503 while the master is frozen, 2xx again after the promotion", () => {
    expect(httpWhileFrozen).toEqual([503]);
    recovered(httpProbe);
  });

  it("when the old master is resumed it becomes a replica: nothing acknowledged on the new master is lost, nothing is delivered twice", async () => {
    const lengthBefore = await log.length();
    frozen.resume();
    await setup.waitForReplica(frozen, 25_000);
    // (job-1 may still wait for the idle worker's stuck read to time out, blockMs + 5 s after the freeze: see above.)
    await waitUntil("job-1 to have run", () => jobsRun.includes("job-1"), 25_000);
    expect(await setup.currentMaster()).toBe(promoted);
    // No connection of the application stays on (or comes back to) the old master.
    await waitUntil(
      "no application connection on the old master",
      async () => (await appConnections(frozen)).length === 0,
      {
        timeoutMs: 5_000,
        intervalMs: 100,
      },
    );

    // What was acknowledged on the new master survived the old master's return.
    expect(await log.length()).toBe(lengthBefore);
    expect(await cacheB.get("item")).toBe("v2");
    expect((await board.top(10)).map((e) => e.member)).toEqual(["after", "before"]);
    const lease = await mutex.tryAcquire();
    expect(lease?.fence).toBeGreaterThan(fenceBefore + 1);
    await lease?.release();

    // Every primitive still works, and delivers once.
    const from = busSent;
    await publisher.publish("news", busSent++);
    await waitUntil("a message after the resume", () => busMessages.includes(from), 3_000);
    await log.append({ n: 2 }, { idempotencyKey: "order-2" });
    await waitUntil("the entry appended after the resume", () => logHandled.includes(2), 5_000);
    await queue.add({ n: 2 }, { id: "job-2" });
    expect(await queue.result("job-2", { timeoutMs: 5_000 })).toBe("done 2");

    expect(logHandled).toEqual([0, 1, 2]);
    await waitUntil("the tail to yield entry 2", () => tailSeen.includes(2), 5_000);
    expect(tailSeen).toEqual([1, 2]);
    expect(tailEnded).toBeUndefined();
    expect(jobsRun).toEqual(["job-0", "job-1", "job-2"]);
    expect([...longRuns].sort()).toEqual(["long-7", "long-8"]);
    expect(new Set(busMessages).size).toBe(busMessages.length);
  });
});
