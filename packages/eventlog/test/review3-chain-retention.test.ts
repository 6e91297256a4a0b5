import { connect, type RedisClient } from "@coordis/core";
import { EventLog, type EventLogOptions, type VerifyResult } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elchainret");
const KEY = Buffer.from("0123456789abcdef0123456789abcdef");
const keyed = { key: KEY, keyId: "k1" };

let n = 0;
const name = (label: string) => `${label}-${n++}`;

/**
 * Appends from one instance per option set (each on its own connection), `perWriter` each, 4 at a time, some with
 * idempotency keys (each key used twice), while `verifiers` loops call verify(); returns the verify() results that
 * were not ok, and the last one.
 */
async function appendAndVerify(
  clients: RedisClient[],
  logName: string,
  variants: EventLogOptions[],
  perWriter: number,
  reader: EventLog<string>,
): Promise<{ alarms: VerifyResult[]; verifications: number }> {
  const writers = variants.map((v, k) => new EventLog<string>(clients[k] as RedisClient, logName, { prefix, ...v }));
  let running = writers.length;
  const alarms: VerifyResult[] = [];
  let verifications = 0;
  const write = async (w: EventLog<string>, k: number) => {
    for (let i = 0; i < perWriter; i += 4) {
      await Promise.all(
        Array.from({ length: 4 }, (_, j) =>
          j % 2 === 0
            ? w.append(`w${k}-${i + j}`)
            : w.append(`key-${(i + j) >> 2}`, { idempotencyKey: `${(i + j) >> 2}` }),
        ),
      );
    }
    running--;
  };
  const check = async () => {
    while (running > 0) {
      const r = await reader.verify();
      verifications++;
      if (!r.ok) alarms.push(r);
    }
  };
  await Promise.all([...writers.map(write), check(), check()]);
  return { alarms, verifications };
}

describe("a chained log appended from several instances while retention trims it", () => {
  let clients: RedisClient[] = [];
  beforeAll(() => {
    clients = Array.from({ length: 4 }, () => connect(inject("coordisRedisUrl")));
  });
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  it("SHA-1: instances with and without retention, batched or not, with keys: verify() is always ok", async () => {
    const logName = name("sha1");
    const reader = new EventLog<string>(clients[0] as RedisClient, logName, { prefix, chain: true });
    const { alarms, verifications } = await appendAndVerify(
      clients,
      logName,
      [
        { chain: true }, // the script's straight-line chained path (and its general code for keyed appends)
        { chain: true, maxLen: 40 },
        { chain: true, batch: { maxSize: 3 }, maxLen: 60 },
        { chain: true, maxAgeMs: 20 },
      ],
      400,
      reader,
    );
    expect(verifications).toBeGreaterThan(0);
    expect(alarms).toEqual([]);
    const final = await reader.verify();
    expect(final).toMatchObject({ ok: true, unchainedCount: 0 });
    const { entries } = await reader.read({ limit: 1000 });
    expect(entries.length).toBe(final.checked);
    // The kept entries are consecutive: sequence numbers n, n + 1, ... up to the head.
    expect(entries.map((e) => e.seq - (entries[0]?.seq ?? 0))).toEqual(entries.map((_, i) => i));
    expect((await reader.head())?.seq).toBe(entries.at(-1)?.seq);
  });

  it("keyed: instances with and without retention, with keys: verify() is always ok", async () => {
    const logName = name("keyed");
    const reader = new EventLog<string>(clients[0] as RedisClient, logName, { prefix, chain: keyed });
    const { alarms, verifications } = await appendAndVerify(
      clients,
      logName,
      [{ chain: keyed }, { chain: keyed, maxLen: 30 }, { chain: keyed, maxAgeMs: 20 }, { chain: keyed, maxLen: 10 }],
      120,
      reader,
    );
    expect(verifications).toBeGreaterThan(0);
    expect(alarms).toEqual([]);
    const final = await reader.verify();
    expect(final).toMatchObject({ ok: true, unchainedCount: 0 });
    const { entries } = await reader.read({ limit: 1000 });
    expect(entries.map((e) => e.seq - (entries[0]?.seq ?? 0))).toEqual(entries.map((_, i) => i));
  });
});

describe("a Redis restart with an append-only file while appenders and consumers run", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true, appendOnly: true });
    redis = connect(server.url);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  for (const [label, chain] of [
    ["SHA-1 chain", true],
    ["keyed chain", keyed],
  ] as const) {
    it(`${label}: killed (SIGKILL) while two instances append, the log left verifies and appends go on`, async () => {
      const logName = name("crash");
      const writers = [0, 1].map(
        (k) => new EventLog<number>(redis, logName, { prefix, chain, ...(k === 1 ? { maxLen: 50 } : {}) }),
      );
      let crashed = false;
      const write = async (w: EventLog<number>) => {
        while (!crashed) {
          await Promise.all(Array.from({ length: 4 }, () => w.append(1).catch(() => undefined)));
          // Failed appends may reject without I/O: let the event loop (and the restart) run.
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      const writing = writers.map(write);
      try {
        await waitUntil("appends are made", async () => ((await writers[0]?.head())?.seq ?? 0) > 200);
        await server.restart(); // SIGKILL, mid-append
      } finally {
        crashed = true;
        await Promise.all(writing);
      }
      // Appends go on once Redis is back (each instance learns the state again if it must).
      for (const w of writers) {
        await waitUntil("an append succeeds", () =>
          w.append(2).then(
            () => true,
            () => false,
          ),
        );
      }
      const reader = new EventLog<number>(redis, logName, { prefix, chain });
      expect(await reader.verify()).toMatchObject({ ok: true, unchainedCount: 0 });
      const { entries } = await reader.read({ limit: 1000 });
      expect(entries.map((e) => e.seq - (entries[0]?.seq ?? 0))).toEqual(entries.map((_, i) => i));
      expect((await reader.head())?.id).toBe(entries.at(-1)?.id);
    });
  }

  for (const [label, options] of [
    ["SHA-1 chain", { chain: true }],
    ["keyed chain with maxLen", { chain: keyed, maxLen: 1000 }],
    ["batched", { batch: true }],
  ] as Array<[string, EventLogOptions]>) {
    it(`${label}: the chain, sequence numbers, idempotency keys and the group go on; every entry is handled`, async () => {
      const log = new EventLog<number>(redis, name("aof"), { prefix, ...options });
      const handled = new Set<number>();
      const consumer = log
        .group("g", { consumer: "c" })
        .consume((e) => void handled.add(e.data), { blockMs: 500, claimIdleMs: 2_000, claimIntervalMs: 200 });
      try {
        const before = await Promise.all(
          Array.from({ length: 20 }, (_, i) => log.append(i, { idempotencyKey: `k${i}` })),
        );
        await waitUntil("the first entries are handled", () => handled.size === 20);
        await server.restart({ graceful: true });
        // Appends retried until Redis is back; each key is appended once whatever the retries did.
        const after: string[] = [];
        for (let i = 20; i < 40; i++) {
          let id: string | undefined;
          while (id === undefined) {
            id = await log.append(i, { idempotencyKey: `k${i}` }).then(
              (r) => r.id,
              () => undefined,
            );
          }
          after.push(id);
        }
        const again = await Promise.all(
          Array.from({ length: 40 }, (_, i) => log.append(i, { idempotencyKey: `k${i}` })),
        );
        expect(again.map((r) => r.id)).toEqual([...before.map((r) => r.id), ...after]);
        expect(again.every((r) => r.duplicate)).toBe(true);
        const { entries } = await log.read();
        expect(entries.map((e) => [e.seq, e.data])).toEqual(Array.from({ length: 40 }, (_, i) => [i + 1, i]));
        if (options.chain !== undefined) expect(await log.verify()).toMatchObject({ ok: true, checked: 40 });
        await waitUntil("every entry is handled", () => handled.size === 40, 10_000);
        await waitUntil(
          "and acknowledged",
          async () => (await log.group("g", { consumer: "m" }).info())?.pending === 0,
        );
        expect((await log.group("g", { consumer: "m" }).info())?.lag).toBe(0);
      } finally {
        await consumer.stop({ timeoutMs: 2_000 });
      }
    });
  }
});
