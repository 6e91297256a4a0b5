import { connect, type RedisClient } from "@coordis/core";
import { type Entry, EventLog, GapError } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

/** Server time in ms (retention is decided by server time). */
async function serverNow(redis: RedisClient): Promise<number> {
  const [s, us] = (await redis.time()) as [string | number, string | number];
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

describe.each([
  ["standalone", () => inject("coordisRedisUrl"), () => inject("coordisAdminRedisUrl")],
  ["cluster", () => inject("coordisClusterUrl"), () => inject("coordisAdminClusterUrl")],
])("EventLog on %s", (topology, url, adminUrl) => {
  let redis: RedisClient;
  /** Unrestricted client for what Coordis is not granted (XDEL to simulate a lost entry). */
  let admin: RedisClient;
  let n = 0;
  const logName = (label: string) => `${topology}-${label}-${n++}`;
  beforeAll(() => {
    redis = connect(url());
    admin = connect(adminUrl());
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  it("10,000 appends with 20% repeated idempotency keys append each key once and return the first id", async () => {
    const log = new EventLog<{ k: number }>(redis, logName("idem"), { prefix });
    const keys = Array.from({ length: 10_000 }, (_, i) => (i % 5 === 4 ? `k-${i - 1 - (i % 7)}` : `k-${i}`));
    const unique = new Set(keys);
    const results: Array<{ key: string; id: string; duplicate: boolean }> = [];
    const chunk = 500;
    for (let i = 0; i < keys.length; i += chunk) {
      const part = keys.slice(i, i + chunk);
      // A repeated key carries the same payload (with another one it is a conflict, tested elsewhere).
      const rs = await Promise.all(part.map((key) => log.append({ k: Number(key.slice(2)) }, { idempotencyKey: key })));
      rs.forEach((r, j) => {
        results.push({ key: part[j] as string, ...r });
      });
    }
    expect(await log.length()).toBe(unique.size);
    const firstId = new Map<string, string>();
    for (const r of results) {
      const seen = firstId.get(r.key);
      if (seen === undefined) {
        expect(r.duplicate).toBe(false);
        firstId.set(r.key, r.id);
      } else {
        expect(r.duplicate).toBe(true);
        expect(r.id).toBe(seen);
      }
    }
    expect(results.filter((r) => r.duplicate)).toHaveLength(keys.length - unique.size);
    // The same key appended concurrently still appends once.
    const race = await Promise.all(Array.from({ length: 20 }, () => log.append({ k: -1 }, { idempotencyKey: "race" })));
    expect(race.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(new Set(race.map((r) => r.id)).size).toBe(1);
  });

  it("paging forwards and backwards visits every entry exactly once, in order", async () => {
    const log = new EventLog<number>(redis, logName("paging"), { prefix });
    const ids: string[] = [];
    for (let i = 0; i < 237; i++) ids.push((await log.append(i)).id);
    const forward: Entry<number>[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await log.read({ limit: 25, ...(after === undefined ? {} : { after }) });
      forward.push(...page.entries);
      pages++;
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(pages).toBe(10);
    expect(forward.map((e) => e.id)).toEqual(ids);
    expect(forward.map((e) => e.data)).toEqual(ids.map((_, i) => i));
    expect(forward.map((e) => e.seq)).toEqual(ids.map((_, i) => i + 1));

    const backward: Entry<number>[] = [];
    let before: string | undefined;
    for (;;) {
      const page = await log.read({ limit: 40, reverse: true, ...(before === undefined ? {} : { before }) });
      backward.push(...page.entries);
      if (page.next === undefined) break;
      before = page.next;
    }
    expect(backward.map((e) => e.id)).toEqual([...ids].reverse());

    const window = await log.read({ after: ids[10], before: ids[15] });
    expect(window.entries.map((e) => e.data)).toEqual([11, 12, 13, 14]);
    expect(window.next).toBeUndefined();
    expect((await log.read({ after: ids[15], before: ids[10] })).entries).toEqual([]);
  });

  it("tail sees live appends in order and resumes from the last id it yielded", async () => {
    const log = new EventLog<number>(redis, logName("tail"), { prefix });
    await log.append(-1); // before the tail: not seen with from "end"
    const seen: number[] = [];
    const seenIds: string[] = [];
    let lastId = "";
    const reading = (async () => {
      for await (const e of log.tail({ blockMs: 100 })) {
        seen.push(e.data);
        seenIds.push(e.id);
        lastId = e.id;
        if (seen.length === 30) break;
      }
    })();
    // The tail resolves its start position before its first read: append until it has seen the first one.
    let lastZero = "";
    await waitUntil("tail started", async () => {
      if (seen.length === 0) lastZero = (await log.append(0)).id;
      return seen.length > 0;
    });
    // It saw one warm-up append, so it started before the last one too: wait until that one has arrived as well,
    // or a late 0 would land among the live values.
    await waitUntil("tail caught up with the warm-up appends", () => seenIds.includes(lastZero));
    const base = seen.length;
    for (let i = 1; i <= 40; i++) await log.append(i);
    await reading;
    expect(seen.slice(0, base).every((v) => v === 0)).toBe(true);
    const live = seen.slice(base);
    expect(live).toEqual(Array.from({ length: 30 - base }, (_, i) => i + 1));

    const rest: number[] = [];
    const controller = new AbortController();
    for await (const e of log.tail({ from: lastId, signal: controller.signal, blockMs: 100 })) {
      rest.push(e.data);
      if (rest.at(-1) === 40) controller.abort();
    }
    expect([...live, ...rest]).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));

    // From "start": everything kept, oldest first.
    const all: number[] = [];
    for await (const e of log.tail({ from: "start", blockMs: 50 })) {
      all.push(e.data);
      if (all.length === 3) break;
    }
    expect(all).toEqual([-1, ...seen.slice(0, 2)]);
  });

  it("tail reports a gap when the entries after its cursor were trimmed", async () => {
    const log = new EventLog<number>(redis, logName("gap"), { prefix, maxLen: 10 });
    const first = await log.append(0);
    for (let i = 1; i < 400; i++) await log.append(i);
    const err = await (async () => {
      for await (const _ of log.tail({ from: first.id, blockMs: 50 })) return undefined;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GapError);
    expect((err as GapError).code).toBe("ERR_EVENTLOG_GAP");
    // Continuing knowingly after the gap yields the oldest kept entry first.
    const resume = (err as GapError).resumeAfter as string;
    const oldest = (await log.read({ limit: 1 })).entries[0] as Entry<number>;
    for await (const e of log.tail({ from: resume, blockMs: 50 })) {
      expect(e.id).toBe(oldest.id);
      break;
    }
  });

  it("tail reports a gap when an entry after its cursor was deleted, with the count missed", async () => {
    const log = new EventLog<number>(redis, logName("xdel"), { prefix });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await log.append(i)).id);
    await admin.xdel(log.keys.stream, ids[3] as string, ids[4] as string);
    const seen: number[] = [];
    const err = await (async () => {
      for await (const e of log.tail({ from: ids[1], blockMs: 50 })) seen.push(e.data);
    })().catch((e: unknown) => e);
    expect(seen).toEqual([2]);
    expect(err).toBeInstanceOf(GapError);
    expect(err).toMatchObject({ after: ids[2], missed: 2 });
  });

  it("a tail that follows each GapError's resumeAfter across two deletions reads every entry left, in order, once", async () => {
    const log = new EventLog<number>(redis, logName("resume"), { prefix });
    const ids: string[] = [];
    for (let i = 1; i <= 10; i++) ids.push((await log.append(i)).id);
    await admin.xdel(log.keys.stream, ids[2] as string, ids[6] as string); // 3 and 7
    const seen: number[] = [];
    const gaps: Array<number | undefined> = [];
    let from = "start";
    for (let attempt = 0; attempt < 5 && seen.at(-1) !== 10; attempt++) {
      try {
        for await (const e of log.tail({ from, blockMs: 50 })) {
          seen.push(e.data);
          from = e.id;
          if (e.data === 10) break;
        }
      } catch (err) {
        if (!(err instanceof GapError)) throw err;
        gaps.push(err.missed);
        from = err.resumeAfter as string;
      }
    }
    expect(seen).toEqual([1, 2, 4, 5, 6, 8, 9, 10]);
    expect(gaps).toEqual([1, 1]);
  });

  it('tail from "0-0" reads a trimmed log from its oldest kept entry, as from "start"', async () => {
    const log = new EventLog<number>(redis, logName("zero"), { prefix, maxLen: 10 });
    for (let i = 0; i < 400; i++) await log.append(i);
    const oldest = (await log.read({ limit: 1 })).entries[0] as Entry<number>;
    for (const from of ["start", "0-0", "0"]) {
      for await (const e of log.tail({ from, blockMs: 50 })) {
        expect(e.id, from).toBe(oldest.id);
        break;
      }
    }
  });

  it("retention by length keeps about maxLen entries, and the chain stays verifiable", async () => {
    const log = new EventLog<number>(redis, logName("maxlen"), { prefix, maxLen: 50, chain: true });
    for (let i = 0; i < 600; i++) await log.append(i);
    const len = await log.length();
    expect(len).toBeGreaterThanOrEqual(50);
    expect(len).toBeLessThan(50 + 150); // approximate trimming removes whole stream nodes
    const newest = (await log.read({ reverse: true, limit: 1 })).entries[0];
    expect(newest?.data).toBe(599);
    expect(await log.verify()).toMatchObject({ ok: true, checked: len });
  });

  it("retention by age trims entries older than maxAgeMs (server time)", async () => {
    const log = new EventLog<number>(redis, logName("maxage"), { prefix, maxAgeMs: 300, chain: true });
    for (let i = 0; i < 300; i++) await log.append(i);
    const oldUntil = await serverNow(redis);
    // Waiting for entries to age is the behaviour under test; poll the server clock, not a fixed sleep.
    await waitUntil("entries older than maxAgeMs", async () => (await serverNow(redis)) > oldUntil + 350);
    await log.append(300);
    const page = await log.read({ limit: 1000 });
    const old = page.entries.filter((e) => e.data < 300);
    expect(old.length).toBeLessThan(150); // MINID ~ keeps at most the node the threshold falls in
    expect(page.entries.at(-1)?.data).toBe(300);
    expect(await log.verify()).toMatchObject({ ok: true });
  });

  it("a poison entry goes to the dead-letter stream after maxDeliveries; the others are acked", async () => {
    const log = new EventLog<{ n: number; poison?: boolean }>(redis, logName("poison"), { prefix });
    for (let i = 0; i < 5; i++) await log.append({ n: i, poison: i === 2 });
    const group = log.group("g", { consumer: "c1" });
    const handled: number[] = [];
    const deliveries: number[] = [];
    const consumer = group.consume(
      (e, ctx) => {
        if (e.data.poison) {
          deliveries.push(ctx.deliveries);
          throw new Error("cannot handle this");
        }
        handled.push(e.data.n);
      },
      { maxDeliveries: 3, claimIdleMs: 50, claimIntervalMs: 20, blockMs: 100 },
    );
    try {
      await waitUntil("dead letter", async () => (await log.deadLetters()).length === 1, 10_000);
    } finally {
      await consumer.stop();
    }
    expect(handled.sort()).toEqual([0, 1, 3, 4]);
    expect(deliveries).toEqual([1, 2, 3]);
    const [dead] = await log.deadLetters();
    expect(dead).toMatchObject({ group: "g", consumer: "c1", deliveries: 3, data: { n: 2, poison: true } });
    expect(dead?.error).toMatch(/cannot handle this/);
    const info = await group.info();
    expect(info).toMatchObject({ name: "g", pending: 0, lag: 0 });
    expect(consumer.stats()).toMatchObject({ acked: 4, failed: 3, deadLettered: 1 });
  });

  it("an entry deleted while its last delivery runs is dropped from the group when it fails, not dead-lettered empty", async () => {
    const log = new EventLog<{ n: number }>(redis, logName("deleted-poison"), { prefix });
    const { id } = await log.append({ n: 1 });
    await log.append({ n: 2 });
    const group = log.group("g", { consumer: "c1" });
    const handled: number[] = [];
    const consumer = group.consume(
      async (e) => {
        if (e.data.n === 1) {
          await admin.xdel(log.keys.stream, id); // retention or an operator removed it meanwhile
          throw new Error("failed after its entry was deleted");
        }
        handled.push(e.data.n);
      },
      { maxDeliveries: 1, blockMs: 100 },
    );
    try {
      await waitUntil("both entries settled", () => consumer.stats().failed === 1 && handled.length === 1, 10_000);
      await waitUntil("nothing pending", async () => (await group.info())?.pending === 0, 10_000);
    } finally {
      await consumer.stop();
    }
    expect(await log.deadLetters()).toEqual([]);
    expect(consumer.stats()).toMatchObject({ failed: 1, deadLettered: 0 });
  });

  it("concurrency runs handlers in parallel and stop() drains what was received", async () => {
    const log = new EventLog<number>(redis, logName("drain"), { prefix });
    for (let i = 0; i < 40; i++) await log.append(i);
    const group = log.group("g", { consumer: "c1" });
    let running = 0;
    let maxRunning = 0;
    const done: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const consumer = group.consume(
      async (e) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await gate;
        running--;
        done.push(e.data);
      },
      { concurrency: 4, batch: 10, blockMs: 100 },
    );
    await waitUntil("4 handlers running", () => running === 4);
    const stopping = consumer.stop();
    release();
    await stopping;
    expect(maxRunning).toBe(4);
    // A read asks only for free handler slots (4 of batch 10): the 4 running entries are all it received.
    expect(done.length).toBe(4);
    const info = await group.info();
    expect(info?.pending).toBe(0); // everything received was handled and acked before stop() resolved
    expect(info?.lag).toBe(40 - done.length);
  });
});
