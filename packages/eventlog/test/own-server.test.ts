import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type Entry, EventLog } from "@coordis/eventlog";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
const workerFile = fileURLToPath(new URL("./fixtures/consumer-worker.ts", import.meta.url));

describe("EventLog on a server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("append is one round trip (one EVALSHA), with or without idempotency key, chain and retention", async () => {
    const plain = new EventLog(redis, "rt-plain", { prefix });
    const full = new EventLog(redis, "rt-full", { prefix, chain: true, maxLen: 100, maxAgeMs: 60_000 });
    await plain.append({ warm: true });
    await full.append({ warm: true }, { idempotencyKey: "warm" });
    for (const [log, opts] of [
      [plain, {}],
      [full, { idempotencyKey: "k1" }],
      [full, { idempotencyKey: "k1" }], // duplicate
    ] as const) {
      const { roundTrips, sent } = await countCommands(server, () => log.append({ a: 1 }, opts));
      expect(roundTrips).toBe(1);
      expect(sent).toEqual({ evalsha: 1 });
    }
  });

  it("rejects bad input with InvalidArgumentError and sends no command", async () => {
    const log = new EventLog<unknown>(redis, "bad-input", { prefix, maxEventBytes: 1_000 });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const { result, roundTrips } = await countCommands(server, async () => {
      const attempts: Array<[string, () => unknown]> = [
        ["event", () => log.append(10n)],
        ["event", () => log.append({ n: 1n })],
        ["event", () => log.append(cyclic)],
        ["event", () => log.append(undefined)],
        ["event", () => log.append(() => 1)],
        ["event", () => log.append("x".repeat(2_000))],
        ["options.idempotencyKey", () => log.append(1, { idempotencyKey: "" })],
        ["options.idempotencyKey", () => log.append(1, { idempotencyKey: "k".repeat(600) })],
        ["options.after", () => log.read({ after: "abc" })],
        ["options.after", () => log.read({ after: "1-2-3" })],
        ["options.before", () => log.read({ before: "99999999999999999999999-0" })],
        ["options.before", () => log.read({ before: 5 as never })],
        ["options.limit", () => log.read({ limit: 0 })],
        ["options.limit", () => log.read({ limit: 1_001 })],
        ["options.limit", () => log.read({ limit: 2.5 })],
        ["options.from", () => log.tail({ from: "nope" })],
        ["options.blockMs", () => log.tail({ blockMs: -1 })],
        ["groupName", () => log.group("", { consumer: "c" })],
        ["options.consumer", () => log.group("g", { consumer: "" })],
        ["options.maxDeliveries", () => log.group("g", { consumer: "c" }).consume(() => {}, { maxDeliveries: 0 })],
        ["options.after", () => log.deadLetters({ after: "x" })],
      ];
      const out: Array<[string, unknown]> = [];
      for (const [arg, attempt] of attempts) {
        try {
          await attempt();
          out.push([arg, undefined]);
        } catch (err) {
          out.push([arg, err]);
        }
      }
      return out;
    });
    expect(roundTrips).toBe(0);
    for (const [arg, err] of result) {
      expect(err, arg).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(arg);
    }
    expect(() => new EventLog(redis, "bad{name}", { prefix })).toThrow(InvalidArgumentError);
    expect(() => new EventLog(redis, "x", { prefix, maxLen: 0 })).toThrow(InvalidArgumentError);
    expect(() => new EventLog(redis, "x", { prefix: "bad prefix" })).toThrow(InvalidArgumentError);
  });
});

describe("EventLog hash chain", () => {
  let redis: RedisClient;
  /** Unrestricted: tampering (XDEL) is not among the commands Coordis is granted. */
  let admin: RedisClient;
  let n = 0;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisAdminRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  async function chained(count: number) {
    const log = new EventLog<{ i: number }>(redis, `chain-${n++}`, { prefix, chain: true });
    for (let i = 0; i < count; i++) await log.append({ i });
    const { entries } = await log.read({ limit: 1000 });
    return { log, entries };
  }

  /** Rewrites the stream as an attacker with write access would: same ids, edited content. */
  async function rewrite(
    log: EventLog<{ i: number }>,
    edit: (raw: Array<[string, string[]]>) => Array<[string, string[]]>,
  ) {
    const raw = (await redis.xrange(log.keys.stream, "-", "+")) as Array<[string, string[]]>;
    const edited = edit(raw);
    await redis.del(log.keys.stream);
    for (const [id, fields] of edited) await redis.xadd(log.keys.stream, id, ...fields);
  }

  it("an untouched log verifies, including one that spans many pages", async () => {
    const { log, entries } = await chained(2_100);
    expect(entries[0]?.prevHash).toBe("0".repeat(40));
    expect(entries[1]?.prevHash).toBe(entries[0]?.hash);
    expect(await log.verify()).toEqual({ ok: true, checked: 2_100, unchained: [], unchainedCount: 0 });
    expect((await log.head())?.hash).toBe((await log.read({ reverse: true, limit: 1 })).entries[0]?.hash);
  });

  it("catches a changed entry", async () => {
    const { log, entries } = await chained(20);
    const target = entries[7] as Entry<{ i: number }>;
    await rewrite(log, (raw) =>
      raw.map(([id, f]) => [id, id === target.id ? f.map((v) => (v === '{"i":7}' ? '{"i":700}' : v)) : f]),
    );
    expect(await log.verify()).toMatchObject({
      ok: false,
      brokenAt: target.id,
      reason: expect.stringMatching(/changed/),
    });
  });

  it("catches an inserted entry, even one with a well-formed hash", async () => {
    const log = new EventLog<{ i: number }>(redis, `chain-${n++}`, { prefix, chain: true });
    for (let i = 0; i < 10; i++) await log.append({ i });
    // Let the server clock move on, so there is room for an id between entry 9 and entry 10.
    const t0 = Number((await log.head())?.id.split("-")[0]);
    await waitUntil("server clock advanced", async () => {
      const [sec, usec] = await redis.time();
      return Number(sec) * 1000 + Math.floor(Number(usec) / 1000) > t0 + 2;
    });
    for (let i = 10; i < 20; i++) await log.append({ i });
    const { entries } = await log.read({ limit: 100 });
    const a = entries[9] as Entry<{ i: number }>;
    const b = entries[10] as Entry<{ i: number }>;
    const forgedId = `${a.id.split("-")[0]}-${Number(a.id.split("-")[1]) + 1}`;
    const payload = '{"i":999}';
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha1").update(`${a.hash}\n${forgedId}\n11\n${payload}`).digest("hex");
    await rewrite(log, (raw) => {
      const i = raw.findIndex(([id]) => id === a.id);
      const forged: [string, string[]] = [forgedId, ["d", payload, "s", "11", "p", a.hash as string, "h", hash]];
      return [...raw.slice(0, i + 1), forged, ...raw.slice(i + 1)];
    });
    expect((await log.read({ after: a.id, limit: 1 })).entries[0]?.id).toBe(forgedId);
    expect(await log.verify()).toMatchObject({ ok: false, brokenAt: b.id });
  });

  it("catches deleted entries: in the middle, the newest and the oldest", async () => {
    const mid = await chained(20);
    await admin.xdel(mid.log.keys.stream, mid.entries[5]?.id as string);
    expect(await mid.log.verify()).toMatchObject({ ok: false, brokenAt: mid.entries[6]?.id });

    const last = await chained(20);
    await admin.xdel(last.log.keys.stream, last.entries[19]?.id as string);
    expect(await last.log.verify()).toMatchObject({ ok: false, reason: expect.stringMatching(/head/) });

    const first = await chained(20);
    await admin.xdel(first.log.keys.stream, first.entries[0]?.id as string);
    expect(await first.log.verify()).toMatchObject({ ok: false, brokenAt: first.entries[1]?.id });
  });
});

describe("consumer group with consumers killed mid-batch", () => {
  let redis: RedisClient;
  /** The handlers' own data store (SADD/SCARD): an application connection, not Coordis' ACL user. */
  let store: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    store = connect(inject("coordisAdminRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
    store.disconnect();
  });

  it("every entry is eventually handled and acked after SIGKILLed consumers, none lost", async () => {
    const name = "crash";
    const doneKey = `${prefix}:crash-done`;
    const log = new EventLog<{ n: number }>(redis, name, { prefix });
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push((await log.append({ n: i })).id);
    const children = ["w1", "w2"].map((consumer) =>
      spawn(
        process.execPath,
        [
          "--conditions=@coordis/source",
          "--import",
          "tsx",
          workerFile,
          inject("coordisRedisUrl"),
          prefix,
          name,
          consumer,
          doneKey,
          inject("coordisAdminRedisUrl"),
        ],
        { stdio: ["ignore", "ignore", "inherit"] },
      ),
    );
    try {
      await waitUntil("workers handled some entries", async () => (await store.scard(doneKey)) >= 40, 30_000);
      for (const child of children) child.kill("SIGKILL");
      await Promise.all(
        children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, "exit") : undefined)),
      );
    } finally {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    const group = log.group("workers", { consumer: "survivor" });
    const before = await group.info();
    expect(before?.pending).toBeGreaterThan(0); // the killed workers left entries delivered but not acked
    const survivor = group.consume(
      async (entry) => {
        await store.sadd(doneKey, entry.id);
      },
      { concurrency: 8, batch: 50, claimIdleMs: 200, claimIntervalMs: 50, blockMs: 100 },
    );
    try {
      await waitUntil(
        "all acked",
        async () => {
          const info = await group.info();
          return info?.pending === 0 && info.lag === 0;
        },
        30_000,
      );
    } finally {
      await survivor.stop();
    }
    const done = new Set(await store.smembers(doneKey));
    expect(ids.filter((id) => !done.has(id))).toEqual([]);
    expect(survivor.stats().claimed).toBeGreaterThan(0);
    expect(await log.deadLetters()).toEqual([]);
  });
});
