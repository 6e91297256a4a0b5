import { connect, type RedisClient } from "@coordis/core";
import { type Entry, EventLog, GapError, UnverifiedEntryError } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elreviewb");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

async function editPayload(admin: RedisClient, stream: string, id: string, payload: string) {
  const all = (await admin.xrange(stream, "-", "+")) as [string, string[]][];
  await admin.del(stream);
  for (const [eid, fields] of all) {
    const f = [...fields];
    if (eid === id) f[f.indexOf("d") + 1] = payload;
    await admin.xadd(stream, eid, ...f);
  }
}

describe("review b: chained reads", () => {
  const clients = sharedClients();

  for (const chain of [true, { key: "0123456789abcdef0123", keyId: "k" }] as const) {
    it(`${chain === true ? "sha1" : "keyed"}: paging with unverified:"skip" returns the same entries as one page`, async () => {
      const log = new EventLog<{ i: number }>(clients.redis, name("skip"), { prefix, chain, unverified: "skip" });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await log.append({ i })).id);
      await editPayload(clients.admin, log.keys.stream, ids[2] as string, '{"i":200}');
      const onePage = (await log.read()).entries.map((e) => e.data.i);
      const paged: number[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await log.read({ limit: 3, ...(after ? { after } : {}) });
        paged.push(...page.entries.map((e) => e.data.i));
        if (page.next === undefined) break;
        after = page.next;
      }
      console.log({ onePage, paged });
      const tailed: unknown[] = [];
      let tailErr: unknown;
      try {
        for await (const e of log.tail({ from: "start", batch: 100, blockMs: 10, unverified: "mark" })) {
          tailed.push([e.data.i, e.verified]);
          if (e.id === ids[5]) break;
        }
      } catch (err) {
        tailErr = err;
      }
      console.log({ tailed, tailErr: String(tailErr), missed: (tailErr as GapError)?.missed });
      expect(paged).toEqual(onePage);
      expect(tailErr).toBeUndefined();
    });
  }
});

describe("review b: tail resume on a lost log", () => {
  const clients = sharedClients();
  it("resume (Last-Event-ID) after the log key was deleted and refilled: silent?", async () => {
    const log = new EventLog<number>(clients.redis, name("lost"), { prefix });
    const a = await log.append(1);
    await log.append(2); // appended after the client's cursor, then lost
    await log.append(3);
    await clients.admin.del(log.keys.stream, log.keys.meta);
    await log.append(100);
    const got: number[] = [];
    const err = await (async () => {
      for await (const e of log.tail({ from: a.id, blockMs: 10 })) {
        got.push(e.data);
        break;
      }
    })().catch((e: unknown) => e);
    console.log({ got, err });
    expect(err).toBeInstanceOf(GapError);
  });
});

describe("review b: Redis restart without persistence, resumed tail", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });
  it("a tail resumed from a cursor of the lost log", async () => {
    const redis = server.client();
    const log = new EventLog<number>(redis, "audit", { prefix });
    const a = await log.append(1);
    await log.append(2);
    await server.restart();
    await waitUntil("reconnected", async () => (await redis.ping().catch(() => "")) === "PONG");
    await log.append(100);
    const got: number[] = [];
    const err = await (async () => {
      for await (const e of log.tail({ from: a.id, blockMs: 10 })) {
        got.push(e.data);
        break;
      }
    })().catch((e: unknown) => e);
    console.log("restart:", { got, err });
    redis.disconnect();
    expect(err).toBeInstanceOf(GapError);
  });
});

describe("review b: consumer groups", () => {
  const clients = sharedClients();

  it("dead-letter after maxDeliveries: handler called exactly maxDeliveries times", async () => {
    const log = new EventLog<number>(clients.redis, name("dlq"), { prefix });
    await log.append(7);
    const calls: number[] = [];
    const c = log.group("g", { consumer: "c1" }).consume(
      (_e, { deliveries }) => {
        calls.push(deliveries);
        throw new Error(`fail ${deliveries}`);
      },
      { claimIdleMs: 20, maxDeliveries: 3, blockMs: 10 },
    );
    await waitUntil("dead-lettered", async () => (await log.deadLetters()).length > 0, 10_000);
    await c.stop();
    const dl = await log.deadLetters();
    console.log({ calls, dl, stats: c.stats() });
    expect(calls).toEqual([1, 2, 3]);
    expect(dl).toHaveLength(1);
    expect(dl[0]).toMatchObject({ data: 7, deliveries: 3, error: "Error: fail 3" });
    expect((await log.group("g", { consumer: "x" }).info())?.pending).toBe(0);
  });

  it("entry trimmed while its last delivery runs, handler fails: dead-lettered?", async () => {
    const log = new EventLog<number>(clients.redis, name("dltrim"), { prefix });
    await log.append(7);
    const c = log.group("g", { consumer: "c1" }).consume(
      async (e) => {
        await clients.admin.xdel(log.keys.stream, e.id);
        throw new Error("fail");
      },
      { claimIdleMs: 20, maxDeliveries: 1, blockMs: 10 },
    );
    await waitUntil("failed", () => c.stats().failed === 1, 10_000);
    await c.stop();
    console.log("trimmed dead letter:", await log.deadLetters(), c.stats());
  });

  it("stream deleted while a consumer blocks: it resumes and handles new entries", async () => {
    const log = new EventLog<number>(clients.redis, name("del"), { prefix });
    const got: number[] = [];
    const errors: string[] = [];
    const logObs = new EventLog<number>(clients.redis, log.name, {
      prefix,
      observer: { onEvent: (e) => errors.push(`${e.type}: ${e.error?.message}`) },
    });
    const c = logObs.group("g", { consumer: "c1" }).consume((e) => void got.push(e.data), { blockMs: 2000 });
    await log.append(1);
    await waitUntil("first", () => got.length === 1, 10_000);
    await clients.admin.del(log.keys.stream);
    await log.append(2);
    await waitUntil("second", () => got.length === 2, 10_000).catch(() => {});
    await c.stop();
    console.log({ got, errors });
    expect(got).toEqual([1, 2]);
  });

  it("stop() of an idle consumer with long blockMs", async () => {
    const log = new EventLog<number>(clients.redis, name("stop"), { prefix });
    const c = log.group("g", { consumer: "c1" }).consume(() => {}, { blockMs: 60_000, claimIdleMs: 600_000 });
    await waitUntil("blocked", async () => ((await clients.admin.client("LIST")) as string).includes("xreadgroup"), 5000);
    const t0 = performance.now();
    await c.stop();
    console.log("stop took", performance.now() - t0);
  });
});

describe("review b: verify", () => {
  const clients = sharedClients();
  it("more than 1000 unchained entries: list capped at 1000, count exact", async () => {
    const log = new EventLog<number>(clients.redis, name("many"), { prefix, chain: true });
    await log.append(1);
    const p = clients.admin.pipeline();
    for (let i = 0; i < 1500; i++) p.xadd(log.keys.stream, "*", "d", String(i));
    await p.exec();
    const r = await log.verify();
    expect(r.unchained.length).toBe(1000);
    expect(r.unchainedCount).toBe(1500);
    expect(r.checked).toBe(1);
  });
});

describe("review b: keyed chain contention", () => {
  const clients = sharedClients();
  it("8 instances x 10 in flight", async () => {
    const conns = Array.from({ length: 8 }, () => connect(inject("coordisRedisUrl")));
    const logName = name("kc");
    const logs = conns.map((c) => new EventLog<number>(c, logName, { prefix, chain: { key: "0123456789abcdef0123", keyId: "k" } }));
    const errors: string[] = [];
    let ok = 0;
    await Promise.all(
      logs.map(async (l) => {
        await Promise.all(
          Array.from({ length: 10 }, async () => {
            for (let i = 0; i < 15; i++) {
              try {
                await l.append(i);
                ok++;
              } catch (e) {
                errors.push(String((e as { code?: string }).code ?? e));
              }
            }
          }),
        );
      }),
    );
    const v = await logs[0]?.verify();
    for (const c of conns) c.disconnect();
    console.log({ ok, errors: errors.length, sample: errors.slice(0, 3), v: { ok: v?.ok, checked: v?.checked } });
    expect(v?.ok).toBe(true);
  });
});
