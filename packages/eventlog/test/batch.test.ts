import { connect, InvalidArgumentError, type OperationEvent, type RedisClient, ScriptError } from "@coordis/core";
import { type AppendResult, EventLog, type EventLogOptions, eventlogScripts } from "@coordis/eventlog";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elb");

type Call = { event: { v: number }; key?: string };

async function append(log: EventLog<{ v: number }>, c: Call): Promise<AppendResult> {
  return log.append(c.event, c.key === undefined ? {} : { idempotencyKey: c.key });
}

/**
 * What must agree between two logs fed the same calls: each call's duplicate and conflict flags (a key reused with
 * another payload, reported) and the seq of its entry.
 */
async function outcome(log: EventLog<{ v: number }>, results: AppendResult[]) {
  const { entries } = await log.read({ limit: 1000 });
  const seqOf = new Map(entries.map((e) => [e.id, e.seq]));
  return {
    calls: results.map((r) => [r.duplicate, r.conflict === true, seqOf.get(r.id)]),
    entries: entries.map((e) => [e.seq, e.data]),
  };
}

/** Runs the same bursts batched (each burst concurrently) and unbatched (one call at a time). */
async function both(redis: RedisClient, name: string, options: EventLogOptions, bursts: Call[][]) {
  const opts: EventLogOptions = { idempotencyConflict: "report", ...options };
  const batched = new EventLog<{ v: number }>(redis, name, { ...opts, prefix: `${prefix}-b`, batch: true });
  const plain = new EventLog<{ v: number }>(redis, name, { ...opts, prefix: `${prefix}-u` });
  const got: AppendResult[] = [];
  const want: AppendResult[] = [];
  for (const burst of bursts) {
    got.push(...(await Promise.all(burst.map((c) => append(batched, c)))));
    for (const c of burst) want.push(await append(plain, c));
  }
  return { got: await outcome(batched, got), want: await outcome(plain, want), batched, plain };
}

describe("micro-batched append on the shared server", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("property: concurrent batched bursts append the same entries, duplicates and chain as the calls one by one", async () => {
    let run = 0;
    const call = fc.record({
      event: fc.record({ v: fc.integer({ min: 0, max: 99 }) }),
      key: fc.option(fc.constantFrom("k1", "k2", "k3"), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(fc.array(call, { minLength: 1, maxLength: 15 }), { minLength: 1, maxLength: 4 }),
        async (chain, bursts) => {
          run++;
          const { got, want, batched } = await both(redis, `prop-${run}`, { chain }, bursts);
          expect(got).toEqual(want);
          if (chain) expect(await batched.verify()).toMatchObject({ ok: true });
        },
      ),
      { numRuns: 20 },
    );
  });

  it("appends of one burst land in call order, each with its own id", async () => {
    const log = new EventLog<{ v: number }>(redis, "order", { prefix, chain: true, batch: { maxSize: 6 } });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => log.append({ v: i })));
    const { entries } = await log.read();
    expect(entries.map((e) => e.data.v)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(entries.map((e) => e.id)).toEqual(results.map((r) => r.id));
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await log.verify()).toMatchObject({ ok: true, checked: 20 });
  });

  it("a call that fails in Redis fails only its own caller", async () => {
    const log = new EventLog<{ v: number }>(redis, "errors", { prefix, batch: true });
    await redis.hset(log.keys.dedupe("broken"), "f", "1");
    const settled = await Promise.allSettled([
      log.append({ v: 1 }),
      log.append({ v: 2 }, { idempotencyKey: "broken" }),
      log.append({ v: 3 }, { idempotencyKey: "fine" }),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const err = (settled[1] as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(ScriptError);
    expect((err as ScriptError).redisMessage).toMatch(/WRONGTYPE/);
    expect((await log.read()).entries.map((e) => e.data.v)).toEqual([1, 3]);
  });

  it("reports one observer event per call", async () => {
    const events: OperationEvent[] = [];
    const log = new EventLog(redis, "events", {
      prefix,
      batch: true,
      observer: { onOperation: (e) => events.push(e) },
    });
    await Promise.all([
      log.append({ a: 1 }, { idempotencyKey: "x" }),
      log.append({ a: 1 }, { idempotencyKey: "x" }),
      log.append({ a: 3 }),
    ]);
    expect(events.map((e) => [e.op, e.outcome])).toEqual([
      ["append", "appended"],
      ["append", "duplicate"],
      ["append", "appended"],
    ]);
  });

  it("works on Redis Cluster (every key of a log shares one slot)", async () => {
    const cluster = connect(inject("coordisClusterUrl"));
    try {
      const bursts: Call[][] = [
        Array.from({ length: 25 }, (_, i) => ({ event: { v: i }, ...(i % 4 === 0 ? { key: `k${i % 8}` } : {}) })),
        Array.from({ length: 10 }, (_, i) => ({ event: { v: 100 + i }, key: `k${i % 3}` })),
      ];
      const { got, want, batched } = await both(cluster, "cluster", { chain: true }, bursts);
      expect(got).toEqual(want);
      expect(await batched.verify()).toMatchObject({ ok: true });
    } finally {
      cluster.disconnect();
    }
  });
});

describe("micro-batched append on a server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = connect(server.url);
    await redis.ping();
    const warm = new EventLog(redis, "warm", { prefix, batch: true });
    await Promise.all([warm.append({ warm: 1 }), warm.append({ warm: 2 })]); // two: a lone call takes the plain script
    await warm.append({ warm: 3 });
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it("N concurrent appends are one EVALSHA; maxSize splits them", async () => {
    const log = new EventLog(redis, "one", { prefix, maxLen: 1000, batch: { maxSize: 100 } });
    const one = await countCommands(server, () =>
      Promise.all(Array.from({ length: 50 }, (_, i) => log.append({ i: i % 40 }, { idempotencyKey: `k${i % 40}` }))),
    );
    expect(one.sent).toEqual({ evalsha: 1 });
    expect(one.result.filter((r) => r.duplicate)).toHaveLength(10);
    expect(one.result[45]?.id).toBe(one.result[5]?.id);
    const small = new EventLog(redis, "split", { prefix, batch: { maxSize: 8 } });
    const split = await countCommands(server, () =>
      Promise.all(Array.from({ length: 20 }, (_, i) => small.append({ i }))),
    );
    expect(split.sent).toEqual({ evalsha: 3 });
  });

  it("an append alone in its event-loop turn is sent as the plain append script; call order holds beside batches", async () => {
    const own = await startRedis();
    try {
      const client = own.client();
      const log = new EventLog(client, "lone", { prefix, batch: { maxSize: 2 } });
      const lone = await countCommands(own, () => log.append({ n: 0 }));
      expect(lone.sent).toEqual({ evalsha: 1, eval: 1 }); // the first call on a fresh server loads the script
      const exists = () => client.script("EXISTS", eventlogScripts.append.sha1, eventlogScripts.appendBatch.sha1);
      expect(await exists()).toEqual([1, 0]);
      // append is cached, append-batch is not: a batch of two (which meets NOSCRIPT) and a lone call issued
      // together still land in call order.
      const three = await Promise.all([log.append({ n: 1 }), log.append({ n: 2 }), log.append({ n: 3 })]);
      expect(await exists()).toEqual([1, 1]);
      const order = (id: string) => id.split("-").map(Number) as [number, number];
      const ids = [lone.result, ...three].map((r) => order(r.id));
      const sorted = [...ids].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      expect(ids).toEqual(sorted);
      expect(new Set(ids.map((id) => id.join("-"))).size).toBe(4);
    } finally {
      await own.stop();
    }
  });

  it("a read sends the queued appends first, so it sees them", async () => {
    const log = new EventLog<{ i: number }>(redis, "flush", { prefix, batch: { maxDelayMs: 1000 } });
    const { result, sent } = await countCommands(server, async () => {
      const appended = log.append({ i: 1 });
      const page = log.read();
      return Promise.all([appended, page]);
    });
    expect(sent).toEqual({ evalsha: 1, xrange: 1 });
    expect(result[1].entries.map((e) => e.id)).toEqual([result[0].id]);
  });

  it("bad input is rejected before queueing; nothing is sent for it", async () => {
    const log = new EventLog(redis, "bad", { prefix, maxEventBytes: 100, batch: true });
    const { result, roundTrips } = await countCommands(server, () =>
      Promise.allSettled([
        log.append(undefined),
        log.append({ big: "x".repeat(200) }),
        log.append({ ok: 1 }, { idempotencyKey: "" }),
        log.append(10n as never),
      ]),
    );
    expect(roundTrips).toBe(0);
    const args = result.map((s) => {
      const reason = (s as PromiseRejectedResult).reason;
      expect(reason).toBeInstanceOf(InvalidArgumentError);
      return (reason as InvalidArgumentError).argument;
    });
    expect(args).toEqual(["event", "event", "options.idempotencyKey", "event"]);
    expect(() => new EventLog(redis, "bad", { prefix, batch: { maxDelayMs: 5000 } })).toThrow(
      expect.objectContaining({ argument: "options.batch.maxDelayMs" }),
    );
  });
});
