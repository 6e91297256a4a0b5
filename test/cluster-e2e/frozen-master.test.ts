import { Cache } from "@coordis/cache";
import { connect, DEFAULT_COMMAND_TIMEOUT_MS, type RedisClient, slotOf } from "@coordis/core";
import { type Consumer, EventLog } from "@coordis/eventlog";
import { coordis } from "@coordis/fastify";
import { Leaderboard } from "@coordis/leaderboard";
import { type Lease, Mutex } from "@coordis/lock";
import { PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import { Queue, RESULT_RECHECK_MS, Worker } from "@coordis/queue";
import { RateLimiter } from "@coordis/ratelimit";
import {
  EventRecorder,
  type ObserverRecorder,
  type RedisCluster,
  type RedisServer,
  recordObserver,
  startRedisCluster,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import type { Cluster } from "ioredis";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appConnections,
  BLOCK_MS,
  info,
  onNode,
  PROBE_MS,
  type Probe,
  probe,
  replicaCaughtUp,
} from "../failover-support.js";

const prefix = testPrefix("cluster-frozen");
/** The Redis channel of a cache namespace's invalidation bus. */
const busChannel = (namespace: string) => `${prefix}:cache-bus:${namespace}`;

/** A Cluster client's look at the slot map: every 2 s (`slotsRefreshInterval` of connect()). */
const SLOTS_REFRESH_MS = 2_000;
/** One look may ask the frozen master first and wait ioredis' `slotsRefreshTimeout` (1 s) before it asks another. */
const SLOTS_REFRESH_TIMEOUT_MS = 1_000;
/** Command timeout of the test's clients (the Fastify plugin's own connection has connect()'s default, 2 s). */
const COMMAND_TIMEOUT_MS = 1_000;
/**
 * How long after the promotion each primitive has to work again ("a few seconds"): a client finds the promoted master
 * at its next look at the slot map, and a call it sent to the frozen master just before waits for its command timeout;
 * plus 2 s for a loaded machine (the full suite on two cores has stretched a recovery to 5.08 s).
 */
const recoveryMs = (commandTimeoutMs = COMMAND_TIMEOUT_MS) =>
  SLOTS_REFRESH_MS + SLOTS_REFRESH_TIMEOUT_MS + commandTimeoutMs + 2_000;
/** Recovery times, printed once at the end (the report of what was measured). */
const timings: Record<string, number | string> = {};

function recovered<T>(name: string, p: Probe<T> | undefined, boundMs = recoveryMs()): T {
  expect(p, "probe ran").toBeDefined();
  if (p === undefined || !p.ok) throw new Error(`never recovered: ${String(p === undefined ? "" : p.error)}`);
  timings[name] = Math.round(p.afterMs);
  expect(p.afterMs, "ms after the promotion").toBeLessThan(boundMs);
  return p.value;
}

/** Every key of `server` under the test's prefix. */
async function keysOn(server: RedisServer): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, page] = await onNode<[string, string[]]>(
      server,
      "SCAN",
      cursor,
      "MATCH",
      `${prefix}:*`,
      "COUNT",
      1000,
    );
    keys.push(...page);
    cursor = next;
  } while (cursor !== "0");
  return keys;
}

/**
 * A Redis Cluster of 3 masters with one replica each (node timeout 2 s; clients as the least-privilege user through
 * `redis+cluster://`). Every primitive is given names whose keys and (sharded) channels hash to the slots of one
 * master; each is set up and used, its blocking readers and subscribers parked on that master. The master is then
 * FROZEN (SIGSTOP) and stays frozen after the cluster promotes its replica: no MOVED and no closed connection tells a
 * client, only its periodic look at the slot map (`slotsRefreshInterval`, 2 s). Every primitive is then probed at once
 * (beforeAll), each recording how long after the promotion it first worked again; the tests check those records. The
 * last test resumes the old master (it rejoins as a replica of the promoted one) and checks nothing goes wrong.
 *
 * Every Cluster client looks at the slot map on a timer of its own, so after the promotion they move one by one: the
 * adversary here is the instance whose client moves first, writing on the promoted master while the others' subscribers
 * are still parked on the frozen one.
 */
describe("every primitive on a Redis Cluster when a master freezes and stays frozen after its replica's promotion", () => {
  let cluster: RedisCluster;
  let frozen: RedisServer;
  let promoted: RedisServer;
  const clients: RedisClient[] = [];
  const client = (commandTimeoutMs = COMMAND_TIMEOUT_MS) => {
    const c = connect(cluster.url, { commandTimeoutMs });
    clients.push(c);
    return c;
  };
  const closers: (() => Promise<unknown>)[] = [];
  let frozenAt = 0;
  let promotedAt = 0;
  /** Names of each primitive, chosen so that their keys and channels live on the master that freezes. */
  const names: Record<string, string> = {};
  let keysOnFrozen: string[] = [];
  let shardChannelsOnFrozen: string[] = [];

  // pub/sub
  let bus: PubSub;
  let publisher: PubSub;
  const busResubscribed = new EventRecorder<ResubscribedInfo>();
  const busResubscribedAt: number[] = [];
  const busMessages: number[] = [];
  let busSent = 0;
  let busProbe: Probe<number> | undefined;
  // eventlog
  let log: EventLog<{ n: number }>;
  let consumer: Consumer;
  const logHandled: number[] = [];
  let logProbe: Probe<true> | undefined;
  let consumerProbe: Probe<true> | undefined;
  const tailSeen: number[] = [];
  let tailProbe: Probe<true> | undefined;
  let tailEnded: unknown;
  const tailAbort = new AbortController();
  // queue: an idle worker, and a result() waiting across the failover
  let queue: Queue<{ n: number }, string>;
  const jobsRun: string[] = [];
  let jobProbe: Probe<true> | undefined;
  let resultQueue: Queue<{ n: number }, string>;
  let resultWaiter: Promise<{ value: string; at: number } | { error: unknown }>;
  let resultCompletedAt = 0;
  // ratelimit (plain and micro-batched), lock, leaderboard
  let limiter: RateLimiter;
  let rlProbe: Probe<true> | undefined;
  let batched: RateLimiter;
  let batchProbe: Probe<true> | undefined;
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
  /** What A served for item2 from the moment another instance's set of it resolved until A served the new value. */
  const otherWriterReads: unknown[] = [];
  let otherWriterProbe: Probe<true> | undefined;
  let otherWriterSetAt = 0;
  let otherWriterStaleUntil = 0;
  // fastify
  let app: FastifyInstance;
  const httpWhileFrozen: number[] = [];
  let httpProbe: Probe<true> | undefined;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, leastPrivilege: true });

    // The master to freeze (the first one), its slots and its replica.
    const first = cluster.nodes[0];
    if (first === undefined) throw new Error("no node");
    frozen = first;
    const ranges = (await onNode<Array<[number, number, [string, number]]>>(frozen, "CLUSTER", "SLOTS")).filter(
      ([, , master]) => master[1] === frozen.port,
    );
    expect(ranges.length).toBeGreaterThan(0);
    const onFrozen = (slot: number) => ranges.some(([from, to]) => from <= slot && slot <= to);
    const replicaPort = Number(/port=(\d+)/.exec((await info(frozen, "replication")).slave0 ?? "")?.[1]);
    const replica = cluster.nodes.find((n) => n.port === replicaPort);
    if (replica === undefined) throw new Error(`no replica of ${frozen.port}`);
    /** The first `<base>-<i>` whose keys and channels (`strings(name)`) all hash to the frozen master's slots. */
    const pick = (base: string, strings: (name: string) => string[]): string => {
      for (let i = 0; ; i++) {
        const name = `${base}-${i}`;
        if (strings(name).every((s) => onFrozen(slotOf(s)))) {
          names[base] = name;
          return name;
        }
      }
    };
    const tagged = (name: string) => [`{${name}}`];

    // pub/sub: a subscriber parked on the master (sharded: SSUBSCRIBE), a publisher on another client.
    bus = new PubSub(client(), { prefix });
    publisher = new PubSub(client(), { prefix });
    expect(bus.isSharded).toBe(true);
    const channel = pick("news", (n) => [bus.redisChannel(n)]);
    bus.on("resubscribed", busResubscribed.record);
    bus.on("resubscribed", () => busResubscribedAt.push(performance.now()));
    closers.push(
      () => bus.close(),
      () => publisher.close(),
    );
    await bus.subscribe<number>(channel, (n) => void busMessages.push(n));
    await publisher.publish(channel, busSent++);
    await waitUntil("the first message", () => busMessages.length === 1);

    // eventlog: a consumer blocked in XREADGROUP on the master, for much longer than the test.
    log = new EventLog<{ n: number }>(client(), pick("orders", tagged), { prefix });
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
    const jobsName = pick("jobs", tagged);
    queue = new Queue<{ n: number }, string>(client(), jobsName, { prefix });
    const worker = new Worker<{ n: number }, string>(
      client(),
      jobsName,
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
    resultQueue = new Queue<{ n: number }, string>(client(), pick("results", tagged), { prefix });
    closers.push(() => resultQueue.close());
    await resultQueue.add({ n: 1 }, { id: "r-1" });
    resultWaiter = resultQueue.result("r-1", { timeoutMs: 40_000 }).then(
      (value) => ({ value, at: performance.now() }),
      (error: unknown) => ({ error }),
    );

    // ratelimit (a plain and a micro-batched limiter), lock, leaderboard.
    const rules = [{ limit: 1_000, windowMs: 3_600_000 }];
    limiter = new RateLimiter(client(), { prefix, rules });
    pick("rl", tagged);
    expect((await limiter.consume(names.rl as string)).allowed).toBe(true);
    batched = new RateLimiter(client(), { prefix, rules, batch: true });
    pick("rlb", tagged);
    const firstBatch = await Promise.all([1, 2, 3].map(() => batched.consume(names.rlb as string)));
    expect(firstBatch.every((d) => d.allowed)).toBe(true);
    mutex = new Mutex(client(), pick("m", tagged), { prefix, ttlMs: 10_000 });
    const acquired = await mutex.tryAcquire();
    if (acquired === null) throw new Error("mutex busy");
    fenceBefore = acquired.fence;
    await acquired.release();
    const held = await new Mutex(client(), pick("held", tagged), { prefix, ttlMs: 60_000 }).tryAcquire();
    if (held === null) throw new Error("held mutex busy");
    heldBefore = held;
    closers.push(() => held.release());
    board = new Leaderboard(client(), pick("season", tagged), { prefix });
    await board.submit("before", 10);

    // cache: B writes, A holds the value in its L1 and must learn of B's next write. The namespace's invalidation
    // channel and the entry's key both hash to the frozen master.
    const namespace = pick("c", (n) => [busChannel(n), `{${n}:item}`, `{${n}:item2}`]);
    observerA = recordObserver();
    const cacheOptions = { prefix, namespace, ttlMs: 60_000, l1: { ttlMs: 60_000 }, checkEvictionPolicy: false };
    cacheA = new Cache(client(), { ...cacheOptions, observer: observerA });
    cacheB = new Cache(client(), cacheOptions);
    closers.push(
      () => cacheA.close(),
      () => cacheB.close(),
    );
    await Promise.all([cacheA.ready(), cacheB.ready()]);
    await cacheB.set("item", "v1");
    await cacheB.set("item2", "w1");
    // A hears of both sets (an invalidation that arrives after A's read would drop what the read put in L1), then
    // holds both values in its L1.
    await waitUntil(
      "A to hear of both sets",
      () => observerA.events.filter((e) => e.type === "invalidation").length === 2,
    );
    expect(await cacheA.get("item")).toBe("v1");
    expect(await cacheA.get("item2")).toBe("w1");
    expect(await cacheA.get("item")).toBe("v1");
    expect(await cacheA.get("item2")).toBe("w1");
    expect(observerA.ops.filter((o) => o.op === "get").map((o) => o.attributes?.tier)).toEqual([
      "l2",
      "l2",
      "l1",
      "l1",
    ]);
    const writerClient = client();
    const writer = new Cache(writerClient, cacheOptions);
    closers.push(() => writer.close());
    await writer.ready();

    // fastify: the plugin opens its own connection from the redis+cluster:// URL; the route's budget (group + key)
    // hashes to the frozen master.
    const group = pick("api", (n) => [`{${n}:k}`]);
    app = Fastify();
    await app.register(coordis, {
      url: cluster.url,
      prefix,
      metrics: { registry: new Registry() },
      rateLimit: { rules: [{ name: "burst", limit: 1_000, windowMs: 3_600_000 }] },
    });
    app.get("/limited", { config: { coordis: { rateLimit: { group, key: () => "k" } } } }, async () => ({ ok: true }));
    await app.ready();
    closers.push(() => app.close());
    expect((await app.inject({ method: "GET", url: "/limited" })).statusCode).toBe(200);

    // Everything written so far is on the replica; the blocking readers and subscribers are parked on the master.
    await replicaCaughtUp(frozen, replica);
    await waitUntil(
      "the consumer, the tail and the worker blocked on the master",
      async () =>
        (await appConnections(frozen, "xreadgroup")).some((l) => / flags=b/.test(l)) &&
        (await appConnections(frozen, "xread")).filter((l) => / flags=b/.test(l)).length === 2,
      10_000,
    );
    keysOnFrozen = await keysOn(frozen);
    shardChannelsOnFrozen = await onNode<string[]>(frozen, "PUBSUB", "SHARDCHANNELS", `${prefix}:*`);

    const replicaAdmin = replica.adminClient();
    try {
      frozen.pause();
      frozenAt = performance.now();
      // While the master is frozen and nothing was promoted yet, the plugin answers 503.
      const during = app.inject({ method: "GET", url: "/limited" }).then((r) => httpWhileFrozen.push(r.statusCode));
      await waitUntil(
        "the replica to be promoted",
        async () => ((await replicaAdmin.info("replication")) as string).includes("role:master"),
        { timeoutMs: 30_000, intervalMs: 50 },
      );
      promoted = replica;
      await during;
    } finally {
      replicaAdmin.disconnect();
    }
    const since = performance.now();
    promotedAt = since;
    timings["promotion after the freeze"] = Math.round(promotedAt - frozenAt);

    const [bus_, log_, consumer_, tail_, job_, rl_, batch_, lock_, board_, cache_, fresh_, http_] = await Promise.all([
      probe(since, "a message published after the promotion", async () => {
        const n = busSent++;
        await publisher.publish(channel, n);
        await waitUntil("the message", () => busMessages.includes(n), 300);
        return n;
      }),
      // Appended with an idempotency key: an append that timed out is retried without appending twice.
      probe(since, "an append after the promotion", () =>
        log.append({ n: 1 }, { idempotencyKey: "order-1" }).then(() => true as const),
      ),
      probe(since, "the blocked consumer to handle it", async () => logHandled.includes(1) || undefined),
      probe(since, "the blocked tail to yield it", async () => tailSeen.includes(1) || undefined),
      (async () => {
        const added = await probe(since, "an add after the promotion", () =>
          queue.add({ n: 1 }, { id: "job-1" }).then(() => true as const),
        );
        if (!added.ok) return added;
        return probe(since, "the idle worker to run it", async () => jobsRun.includes("job-1") || undefined);
      })(),
      probe(
        since,
        "a consume after the promotion",
        async () => (await limiter.consume(names.rl as string)).allowed || undefined,
      ),
      probe(since, "a batched consume after the promotion", async () => {
        const ds = await Promise.all([1, 2].map(() => batched.consume(names.rlb as string)));
        return ds.every((d) => d.allowed) || undefined;
      }),
      (async () => {
        const lease = await probe(since, "an acquire after the promotion", async () => {
          return (await mutex.tryAcquire()) ?? undefined;
        });
        // The lease held before the freeze is on the promoted replica: the lock is still taken there.
        heldElsewhere = await new Mutex(client(), names.held as string, { prefix, ttlMs: 60_000 })
          .tryAcquire()
          .catch(() => "error" as const);
        return lease;
      })(),
      probe(since, "a submit after the promotion", () => board.submit("after", 20).then(() => true as const)),
      (async () => {
        const set = await probe(since, "a cache set after the promotion", () =>
          cacheB.set("item", "v2").then(() => true as const),
        );
        cacheReadRightAfterSet = await cacheA.get("item").catch((e: unknown) => e);
        if (!set.ok) return set;
        return probe(since, "cache A to serve v2", async () => (await cacheA.get("item")) === "v2" || undefined);
      })(),
      (async () => {
        // Another instance replaces item2 as soon as its client knows the promoted master: its client is the first to
        // look at the slot map after the promotion (every client looks every 2 s, each at its own moment; one of them
        // is first). Once its set resolved, A must not serve w1 from its L1, although A's subscriber may still be
        // parked on the frozen master (its own look is up to 3 s away) and the invalidation then reaches nobody.
        await waitUntil(
          "every other node to name the promoted master for the frozen master's slots",
          async () => {
            const slot = ranges[0]?.[0] ?? 0;
            const maps = await Promise.all(
              cluster.nodes
                .filter((n) => n !== frozen)
                .map((n) => onNode<Array<[number, number, [string, number]]>>(n, "CLUSTER", "SLOTS")),
            );
            return maps.every((m) => m.find(([from, to]) => from <= slot && slot <= to)?.[2][1] === replica.port);
          },
          { timeoutMs: PROBE_MS, intervalMs: 20 },
        );
        await new Promise<void>((resolve) => (writerClient as Cluster).refreshSlotsCache(() => resolve()));
        const set = await probe(since, "another instance's set after the promotion", () =>
          writer.set("item2", "w2").then(() => true as const),
        );
        if (!set.ok) return set;
        // Read as fast as a busy replica would until A serves w2 (its subscriber has found the promoted master and
        // dropped its L1, or the invalidation reached it).
        otherWriterSetAt = performance.now();
        await waitUntil(
          "cache A to serve w2",
          async () => {
            const value = await cacheA.get("item2").catch((e: unknown) => e);
            otherWriterReads.push(value);
            return value === "w2";
          },
          { timeoutMs: PROBE_MS, intervalMs: 10 },
        ).catch(() => {});
        otherWriterStaleUntil = performance.now();
        return set;
      })(),
      probe(since, "a 2xx answer after the promotion", async () => {
        const res = await app.inject({ method: "GET", url: "/limited" });
        return res.statusCode < 300 || undefined;
      }),
      (async () => {
        // The job r-1 is run only now, on the promoted master: result() must hear of it.
        const resultWorker = new Worker<{ n: number }, string>(
          client(),
          names.results as string,
          (job) => {
            resultCompletedAt = performance.now();
            return `done ${job.data.n}`;
          },
          { prefix },
        );
        closers.push(() => resultWorker.close({ timeoutMs: 2_000 }));
      })(),
    ]);
    busProbe = bus_;
    logProbe = log_;
    consumerProbe = consumer_;
    tailProbe = tail_;
    jobProbe = job_;
    rlProbe = rl_;
    batchProbe = batch_;
    lockProbe = lock_;
    boardProbe = board_;
    cacheProbe = cache_;
    otherWriterProbe = fresh_;
    httpProbe = http_;
  }, 150_000);

  afterAll(async () => {
    for (const node of cluster?.nodes ?? []) if (node.paused) node.resume();
    await Promise.allSettled(closers.map((close) => close()));
    for (const c of clients.splice(0)) c.disconnect();
    await cluster?.stop();
    console.log(`cluster frozen-master timings (ms): ${JSON.stringify(timings)}`);
  });

  it("every primitive's keys and channels were on the master that froze, which stays frozen while they are probed", () => {
    expect(frozen.paused).toBe(true);
    expect(promoted).not.toBe(frozen);
    for (const base of ["orders", "jobs", "results", "rl", "rlb", "m", "held", "season"]) {
      expect(
        keysOnFrozen.some((k) => k.includes(`{${names[base]}}`)),
        base,
      ).toBe(true);
    }
    expect(
      keysOnFrozen.some((k) => k.includes(`{${names.c}:item}`)),
      "cache entry",
    ).toBe(true);
    expect(
      keysOnFrozen.some((k) => k.includes(`{${names.api}:k}`)),
      "fastify budget",
    ).toBe(true);
    expect(shardChannelsOnFrozen).toContain(bus.redisChannel(names.news as string));
    expect(shardChannelsOnFrozen).toContain(busChannel(names.c as string));
    expect(
      shardChannelsOnFrozen.some((c) => c.includes(`{${names.results}}`)),
      "result() channel",
    ).toBe(true);
  });

  it("pub/sub: the sharded subscriber resubscribes on the promoted master and later messages arrive once, in order", async () => {
    recovered("pubsub", busProbe);
    expect(busResubscribed.items.length).toBeGreaterThanOrEqual(1);
    const resubscribedAt = busResubscribedAt.find((t) => t > frozenAt) ?? Number.POSITIVE_INFINITY;
    timings["pubsub resubscribed"] = Math.round(resubscribedAt - promotedAt);
    expect(resubscribedAt - promotedAt).toBeLessThan(recoveryMs());
    const [, count] = await onNode<[string, number]>(
      promoted,
      "PUBSUB",
      "SHARDNUMSUB",
      bus.redisChannel(names.news as string),
    );
    expect(Number(count)).toBe(1);
    // Every message published from now on arrives, once, in order.
    const from = busSent;
    for (let i = 0; i < 5; i++) await publisher.publish(names.news as string, busSent++);
    await waitUntil("five more messages", () => busMessages.filter((n) => n >= from).length === 5, 3_000);
    expect(busMessages.filter((n) => n >= from)).toEqual([from, from + 1, from + 2, from + 3, from + 4]);
    expect(new Set(busMessages).size).toBe(busMessages.length);
  });

  it("eventlog: appends succeed again on the promoted master", () => {
    recovered("eventlog append", logProbe);
  });

  it("eventlog: the consumer blocked in XREADGROUP on the frozen master gets the entry appended to the promoted one", () => {
    recovered("eventlog consumer", consumerProbe);
    expect(logHandled).toEqual([0, 1]);
  });

  it("eventlog: a tail blocked in XREAD on the frozen master yields the entry appended to the promoted one", () => {
    recovered("eventlog tail", tailProbe);
    expect(tailSeen).toEqual([1]);
    expect(tailEnded).toBeUndefined();
  });

  it("queue: the worker idle in XREAD on the frozen master runs a job added after the promotion", () => {
    recovered("queue idle worker", jobProbe);
    expect(jobsRun).toEqual(["job-0", "job-1"]);
  });

  it("queue: result() waiting since before the freeze resolves with a job completed on the promoted master", async () => {
    const outcome = await resultWaiter;
    if ("error" in outcome) throw outcome.error;
    expect(outcome.value).toBe("done 1");
    expect(resultCompletedAt).toBeGreaterThan(0);
    timings["queue result() after completion"] = Math.round(outcome.at - resultCompletedAt);
    // Within the documented bound: the announcement, the look when the subscription is restored, or at the latest the
    // periodic look (every RESULT_RECHECK_MS), made once the Queue's own client has found the promoted master.
    expect(outcome.at - resultCompletedAt).toBeLessThan(RESULT_RECHECK_MS + COMMAND_TIMEOUT_MS + 500);
  });

  it("ratelimit: consume succeeds again on the promoted master, counting what was acknowledged before", async () => {
    recovered("ratelimit", rlProbe);
    const decision = await limiter.consume(names.rl as string);
    expect(decision.allowed).toBe(true);
    expect(decision.remaining).toBeLessThanOrEqual(1_000 - 3);
  });

  it("ratelimit: micro-batched consume succeeds again on the promoted master", async () => {
    recovered("ratelimit batched", batchProbe);
    const decisions = await Promise.all([1, 2, 3].map(() => batched.consume(names.rlb as string)));
    expect(decisions.every((d) => d.allowed)).toBe(true);
    // 3 before + at least 2 from the probe + these 3.
    expect(Math.min(...decisions.map((d) => d.remaining))).toBeLessThanOrEqual(1_000 - 8);
  });

  it("lock: a Mutex acquires again with a higher fence; a lease held before the freeze still holds the lock", async () => {
    const lease = recovered("lock", lockProbe);
    expect(lease.fence).toBeGreaterThan(fenceBefore);
    await lease.release();
    expect(heldElsewhere).toBeNull();
    expect(heldBefore.fence).toBeGreaterThan(0);
  });

  it("leaderboard: submits succeed again and what was submitted before the freeze is there", async () => {
    recovered("leaderboard", boardProbe);
    const top = await board.top(10);
    expect(top.map((e) => [e.member, e.score])).toEqual([
      ["after", 20],
      ["before", 10],
    ]);
  });

  // A's invalidation subscriber (a Cluster client of its own, which looks at the slot map every 2 s) may still be
  // subscribed on the frozen master when B's set resolves: that invalidation then reaches no one, and A may serve the
  // old value until its subscriber follows the failover and reports the gap (dropping its L1). With failover settings
  // this fast (a promotion within about a second, well inside the subscriber heartbeat's 10 s) that is the documented
  // bound (the cache README, "Undetected loss"): recovery within the time a client takes to find the promoted master.
  it("cache: sets succeed again, and the other instance drops its L1 copy once its subscriber follows the failover", () => {
    recovered("cache", cacheProbe);
    expect(observerA.events.some((e) => e.type === "gap")).toBe(true);
    expect(
      cacheReadRightAfterSet === undefined || cacheReadRightAfterSet === "v1" || cacheReadRightAfterSet === "v2",
    ).toBe(true);
  });

  it("cache: a value another instance set on the promoted master stops being served from L1 within the recovery bound", () => {
    recovered("cache other writer", otherWriterProbe);
    timings["cache other writer: A served w2 after"] = Math.round(otherWriterStaleUntil - otherWriterSetAt);
    timings["cache other writer: stale reads"] = otherWriterReads.filter((v) => v === "w1").length;
    expect(otherWriterReads.at(-1)).toBe("w2");
    expect(otherWriterStaleUntil - otherWriterSetAt).toBeLessThan(recoveryMs());
  });

  it("fastify: 503 while the master is frozen, 2xx again after the promotion", () => {
    expect(httpWhileFrozen).toEqual([503]);
    recovered("fastify", httpProbe, recoveryMs(DEFAULT_COMMAND_TIMEOUT_MS));
  });

  it("when the old master is resumed it rejoins as a replica: nothing acknowledged on the new master is lost, nothing is delivered twice", async () => {
    const lengthBefore = await log.length();
    frozen.resume();
    await waitUntil(
      "the old master to replicate the promoted one",
      async () => {
        const r = await info(frozen, "replication");
        return r.role === "slave" && r.master_port === String(promoted.port) && r.master_link_status === "up";
      },
      { timeoutMs: 25_000, intervalMs: 100 },
    );
    expect((await info(promoted, "replication")).role).toBe("master");
    // No blocking reader or subscriber of the application stays on (or comes back to) the old master.
    await waitUntil(
      "no blocked reader on the old master",
      async () => (await appConnections(frozen)).filter((l) => / flags=b/.test(l)).length === 0,
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    expect(await onNode<string[]>(frozen, "PUBSUB", "SHARDCHANNELS", `${prefix}:*`)).toEqual([]);

    // What was acknowledged on the new master survived the old master's return.
    expect(await log.length()).toBe(lengthBefore);
    expect(await cacheB.get("item")).toBe("v2");
    expect((await board.top(10)).map((e) => e.member)).toEqual(["after", "before"]);
    const lease = await mutex.tryAcquire();
    expect(lease?.fence).toBeGreaterThan(fenceBefore + 1);
    await lease?.release();

    // Every primitive still works, and delivers once.
    const from = busSent;
    await publisher.publish(names.news as string, busSent++);
    await waitUntil("a message after the resume", () => busMessages.includes(from), 3_000);
    await log.append({ n: 2 }, { idempotencyKey: "order-2" });
    await waitUntil("the entry appended after the resume", () => logHandled.includes(2), 5_000);
    await queue.add({ n: 2 }, { id: "job-2" });
    expect(await queue.result("job-2", { timeoutMs: 5_000 })).toBe("done 2");
    expect((await app.inject({ method: "GET", url: "/limited" })).statusCode).toBe(200);

    expect(logHandled).toEqual([0, 1, 2]);
    await waitUntil("the tail to yield entry 2", () => tailSeen.includes(2), 5_000);
    expect(tailSeen).toEqual([1, 2]);
    expect(tailEnded).toBeUndefined();
    expect(jobsRun).toEqual(["job-0", "job-1", "job-2"]);
    expect(new Set(busMessages).size).toBe(busMessages.length);
  });
});
