import { InvalidArgumentError, type RedisClient, runScript } from "@coordis/core";
import { type Job, Queue, Worker } from "@coordis/queue";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queueScripts } from "../src/scripts.generated.js";
import { previousScripts } from "./fixtures/previous-scripts.js";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue");

describe("Queue on a server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    // appendfsync always: an acknowledged add is on disk before its reply, so a SIGKILL of Redis loses none.
    server = await startRedis({ leastPrivilege: true, appendOnly: true, config: { appendfsync: "always" } });
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it("a job's whole life (add, fetch, complete, result kept) costs about 6 Redis commands with batched fetch and finish", async () => {
    const n = 400;
    const queue = new Queue<number, number>(redis, "cost", { prefix });
    const warm = new Worker<number, number>(redis, "cost", async (job) => job.data, { prefix, concurrency: 50 });
    await queue.result((await queue.add(0)).id, { timeoutMs: 10_000 });
    await warm.close();
    const worker = new Worker<number, number>(redis, "cost", async (job) => job.data, {
      prefix,
      concurrency: 50,
      schedules: false,
    });
    try {
      // Workers wait (blocked) before the jobs arrive: the count covers everything a job costs, idle reads included.
      await waitUntil("the worker to block", async () => (await queue.counts()).waiting === 0, 10_000);
      const { executed, sent } = await countCommands(server, async () => {
        await Promise.all(Array.from({ length: n }, (_, i) => queue.add(i)));
        await waitUntil("every job completed", () => worker.stats().completed === n, 30_000);
      });
      const total = Object.values(executed).reduce((a, b) => a + b, 0);
      const perJob = total / n;
      console.log(`per job: ${perJob.toFixed(2)} commands executed; sent ${JSON.stringify(sent)}`);
      console.log(`executed: ${JSON.stringify(executed)}`);
      // add = EVALSHA (micro-batched) + HSETNX + XADD; fetch and finish are shared by the batch.
      expect(executed.hsetnx).toBe(n);
      expect(executed.xadd).toBeGreaterThanOrEqual(n);
      expect(perJob).toBeLessThanOrEqual(6.5);
    } finally {
      await worker.close();
      await queue.close();
    }
  });

  it("rejects bad input with InvalidArgumentError naming the argument, sending nothing", async () => {
    const queue = new Queue<unknown>(redis, "bad", { prefix });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const handler = async () => 1;
    const cases: Array<[string, () => unknown]> = [
      ["name", () => new Queue(redis, "")],
      ["name", () => new Queue(redis, "a{b}")],
      ["name", () => new Queue(redis, "x".repeat(501))],
      ["redis", () => new Queue(null as never, "q")],
      ["options.prefix", () => new Queue(redis, "q", { prefix: "bad prefix" })],
      ["options.partitions", () => new Queue(redis, "q", { partitions: 0 })],
      ["options.partitions", () => new Queue(redis, "q", { partitions: 257 })],
      ["options.patitions", () => new Queue(redis, "q", { patitions: 2 } as never)],
      ["options.defaults.attempts", () => new Queue(redis, "q", { defaults: { attempts: 0 } })],
      ["options.defaults.id", () => new Queue(redis, "q", { defaults: { id: "x" } as never })],
      ["options.retention.completed", () => new Queue(redis, "q", { retention: { completed: -1 } })],
      ["options.codec.encode", () => new Queue(redis, "q", { codec: { decode: JSON.parse } as never })],
      ["options.batch.maxSize", () => new Queue(redis, "q", { batch: { maxSize: 0 } })],
      ["data", () => queue.add(10n)],
      ["data", () => queue.add(cyclic)],
      ["data", () => queue.add(() => 1)],
      ["data", () => new Queue(redis, "q", { maxPayloadBytes: 10 }).add("x".repeat(20))],
      ["opts.id", () => queue.add(1, { id: "" })],
      ["opts.id", () => queue.add(1, { id: "a\nb" })],
      ["opts.id", () => queue.add(1, { id: "x".repeat(300) })],
      ["opts.delayMs", () => queue.add(1, { delayMs: -1 })],
      ["opts.delayMs", () => queue.add(1, { delayMs: 1.5 })],
      ["opts.priority", () => queue.add(1, { priority: 10 })],
      ["opts.attempts", () => queue.add(1, { attempts: 1_001 })],
      ["opts.backoff.type", () => queue.add(1, { backoff: { type: "linear" as never, delayMs: 1 } })],
      ["opts.backoff.jitter", () => queue.add(1, { backoff: { type: "fixed", delayMs: 1, jitter: 2 } })],
      ["opts.group", () => queue.add(1, { group: "" })],
      ["opts.resultTtlMs", () => queue.add(1, { resultTtlMs: 0 })],
      ["opts.colour", () => queue.add(1, { colour: "red" } as never)],
      ["items", () => queue.addMany(5 as never)],
      ["items[1].opts.priority", () => queue.addMany([{ data: 1 }, { data: 2, opts: { priority: -1 } }])],
      ["items[0].data", () => queue.addMany([{ data: 1n }])],
      // A sparse array: its hole is an item too, refused like an undefined one.
      ["items[0]", () => queue.addMany(Object.assign([], { 1: { data: 1 } }))],
      ["id", () => queue.get(5 as never)],
      ["id", () => queue.cancel("")],
      ["id", () => queue.retryDead(undefined as never)],
      ["options.timeoutMs", () => queue.result("x", { timeoutMs: 0 })],
      ["options.limit", () => queue.deadLetters({ limit: 0 })],
      ["options.cursor", () => queue.deadLetters({ cursor: "nope" })],
      ["name", () => queue.schedule("", { everyMs: 1_000 }, 1)],
      ["spec.everyMs", () => queue.schedule("s", { everyMs: 10 }, 1)],
      ["spec.cron", () => queue.schedule("s", { cron: "not a cron" }, 1)],
      ["spec.tz", () => queue.schedule("s", { cron: "* * * * *", tz: "Mars/Olympus" }, 1)],
      ["spec", () => queue.schedule("s", {} as never, 1)],
      ["opts.delayMs", () => queue.schedule("s", { everyMs: 1_000 }, 1, { delayMs: 5 } as never)],
      ["handler", () => new Worker(redis, "q", 5 as never)],
      ["options.concurrency", () => new Worker(redis, "q", handler, { concurrency: 0 })],
      ["options.leaseMs", () => new Worker(redis, "q", handler, { leaseMs: 10 })],
      ["options.blockMs", () => new Worker(redis, "q", handler, { blockMs: 5 })],
      ["options.groups.concurrency", () => new Worker(redis, "q", handler, { groups: { concurrency: 0 } })],
      [
        "options.groups.rateLimit[0].limit",
        () => new Worker(redis, "q", handler, { groups: { rateLimit: [{ limit: 0, windowMs: 1_000 }] } }),
      ],
      ["options.concurrensy", () => new Worker(redis, "q", handler, { concurrensy: 2 } as never)],
    ];
    const { roundTrips, result } = await countCommands(server, async () => {
      const seen: string[] = [];
      for (const [, call] of cases) {
        try {
          await call();
          seen.push("no error");
        } catch (err) {
          seen.push(err instanceof InvalidArgumentError ? err.argument : `other: ${String(err)}`);
        }
      }
      return seen;
    });
    expect(result).toEqual(cases.map(([argument]) => argument));
    expect(roundTrips).toBe(0);
    await queue.close();
  });

  it("Redis killed and restarted with AOF: every acknowledged add survives and is processed", async () => {
    const n = 300;
    const queue = new Queue<number, number>(redis, "aof", { prefix });
    const processed = new Map<number, number>();
    const worker = new Worker<number, number>(
      redis,
      "aof",
      async (job) => {
        await new Promise((r) => setTimeout(r, 2));
        processed.set(job.data, (processed.get(job.data) ?? 0) + 1);
        return job.data;
      },
      { prefix, concurrency: 10, leaseMs: 2_000 },
    );
    try {
      const acked: number[] = [];
      const adds = Array.from({ length: n }, (_, i) =>
        queue.add(i, { id: `job-${i}` }).then(
          () => acked.push(i),
          () => {},
        ),
      );
      await waitUntil("some jobs processed", () => processed.size >= 20, 20_000);
      await server.restart({ graceful: false });
      await Promise.all(adds);
      // Adds that failed during the restart are retried with their id: idempotent, each job exists once.
      for (let i = 0; i < n; i++) if (!acked.includes(i)) await queue.add(i, { id: `job-${i}` });
      await waitUntil("every job processed", async () => (await queue.counts()).completed === n, 60_000);
      for (let i = 0; i < n; i++) expect(processed.get(i) ?? 0).toBeGreaterThanOrEqual(1);
      const { waiting, active, delayed, dead } = await queue.counts();
      expect({ waiting, active, delayed, dead }).toEqual({ waiting: 0, active: 0, delayed: 0, dead: 0 });
    } finally {
      await worker.close({ timeoutMs: 1_000 });
      await queue.close();
    }
  }, 120_000);
  it("running jobs are found without scanning: leases and fences are a skiplist and a hash table from the first fetch; counts and idle waits skip the marker that does it", async () => {
    const admin = server.adminClient();
    const queue = new Queue<number, number>(redis, "encodings", { prefix });
    const key = (kind: string) => `${prefix}:queue:{encodings}:${kind}`;
    const started = gate<void>();
    const finish = gate<void>();
    const worker = new Worker<number, number>(
      redis,
      "encodings",
      async (job) => {
        started.open();
        await finish.promise;
        return job.data;
      },
      { prefix },
    );
    try {
      const { id } = await queue.add(7);
      await started.promise;
      // One running job: small enough for a listpack, which every lookup by id would scan.
      expect(await admin.call("OBJECT", "ENCODING", key("leases"))).toBe("skiplist");
      expect(await admin.call("OBJECT", "ENCODING", key("active"))).toBe("hashtable");
      expect((await queue.counts()).active).toBe(1);
      finish.open();
      expect(await queue.result(id, { timeoutMs: 10_000 })).toBe(7);
      expect((await queue.counts()).active).toBe(0);
      // Nothing runs, nothing is delayed: a fetch tells an idle worker nothing is due (-1), not the marker's
      // infinite lease.
      const kinds = ["jobs", "ready", "delayed", "prio", "leases", "active", "done", "dead", "cancelled", "meta"];
      const all = [...kinds, "groups", "gwait", "wake"].map(key);
      const args = ["1", "30000", "0", "", "10", "60000", "0.5", "", "ch"];
      const reply = await runScript(redis, queueScripts.fetch, all as never, args as never);
      expect(reply.slice(0, 3)).toEqual([expect.any(Number), 0, -1]);
      expect(await redis.exists(key("leases"))).toBe(1);
    } finally {
      finish.open();
      await worker.close();
      await queue.close();
    }
  });
  it("a grouped job's delivery is recorded as its fence alone (as the previous release wrote every delivery): it renews, reports progress, completes and frees its group slot", async () => {
    const admin = server.adminClient();
    const queue = new Queue<number, number>(redis, "upgrade", { prefix });
    const key = (kind: string) => `${prefix}:queue:{upgrade}:${kind}`;
    const started = gate<Job<number>>();
    const finish = gate<void>();
    const worker = new Worker<number, number>(
      redis,
      "upgrade",
      async (job) => {
        started.open(job);
        await finish.promise;
        await job.progress(50);
        return job.data * 2;
      },
      { prefix, leaseMs: 1_000 },
    );
    try {
      const { id } = await queue.add(21, { group: "g1", resultTtlMs: 60_000 });
      const job = await started.promise;
      expect(await admin.hget(key("active"), id)).toBe(String(job.fence));
      // A renewal (every leaseMs / 3) moves the lease on.
      const first = Number(await admin.zscore(key("leases"), id));
      await waitUntil("a renewal", async () => Number(await admin.zscore(key("leases"), id)) > first, 5_000);
      expect(await queue.get(id)).toMatchObject({ state: "active", fence: job.fence, group: "g1" });
      finish.open();
      expect(await queue.result(id, { timeoutMs: 10_000 })).toBe(42);
      expect(await queue.get(id)).toMatchObject({ state: "completed", progress: 50, result: 42 });
      expect(await admin.hget(key("groups"), "c:g1")).toBeNull();
    } finally {
      finish.open();
      await worker.close();
      await queue.close();
    }
  });

  it("rolling upgrade: the previous release's get reads a delivery of this release as running with its fence; a delivery recorded by the previous release still renews and completes", async () => {
    const admin = server.adminClient();
    const queue = new Queue<number, number>(redis, "mixed", { prefix });
    const key = (kind: string) => `${prefix}:queue:{mixed}:${kind}`;
    const started = gate<Job<number>>();
    const finish = gate<void>();
    const worker = new Worker<number, number>(
      redis,
      "mixed",
      async (job) => {
        started.open(job);
        await finish.promise;
        return job.data + 1;
      },
      { prefix, leaseMs: 1_000 },
    );
    try {
      const { id } = await queue.add(1, { resultTtlMs: 60_000 });
      const job = await started.promise;
      expect(await admin.hget(key("active"), id)).toBe(`${job.fence}.060000`);
      const keys = ["jobs", "active", "delayed", "done", "cancelled"].map(key);
      const old = await runScript(redis, previousScripts.get, keys as never, [id]);
      expect(old[0]).toBe("active");
      expect(old[11]).toBe(job.fence);
      // As the previous release's fetch records a delivery: the fence alone.
      await admin.hset(key("active"), id, String(job.fence));
      const first = Number(await admin.zscore(key("leases"), id));
      await waitUntil("a renewal", async () => Number(await admin.zscore(key("leases"), id)) > first, 5_000);
      finish.open();
      expect(await queue.result(id, { timeoutMs: 10_000 })).toBe(2);
      expect(await queue.get(id)).toMatchObject({ state: "completed", result: 2 });
    } finally {
      finish.open();
      await worker.close();
      await queue.close();
    }
  });
});
