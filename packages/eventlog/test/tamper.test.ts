import { createHash } from "node:crypto";
import {
  type Entry,
  EventLog,
  type EventLogOptions,
  IdempotencyConflictError,
  UnverifiedEntryError,
} from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("eltamper");
const KEY = Buffer.from("0123456789abcdef0123456789abcdef");
const keyed = { key: KEY, keyId: "k1" };

let n = 0;
const name = (label: string) => `${label}-${n++}`;

describe("tamper evidence", () => {
  /** `redis` as Coordis uses it; `admin` unrestricted: the attacker with write access to Redis. */
  const clients = sharedClients();

  for (const [mode, chain] of [
    ["SHA-1", true],
    ["keyed", keyed],
  ] as const) {
    it(`${mode}: verify() names entries XADDed after the last append and in between; read()/tail() do not pass them off`, async () => {
      const log = new EventLog<{ i: number }>(clients.redis, name("foreign"), { prefix, chain });
      for (let i = 0; i < 3; i++) await log.append({ i });
      // Forged after the last append, with the chain fields of a plausible next entry.
      const head = (await log.head()) as { hash: string; seq: number };
      const after = (await clients.admin.xadd(
        log.keys.stream,
        "*",
        "d",
        '{"i":99}',
        "s",
        head.seq + 1,
        "p",
        head.hash,
        "h",
        "f".repeat(head.hash.length),
        ...(chain === true ? [] : ["k", "k1"]),
      )) as string;
      let result = await log.verify();
      expect(result).toMatchObject({ ok: false, brokenAt: after, unchainedCount: 1 });
      expect(result.unchained.map((u) => u.id)).toEqual([after]);

      // In between: a plain XADD, then more appends.
      const between = (await clients.admin.xadd(log.keys.stream, "*", "d", '{"i":-1}')) as string;
      await log.append({ i: 3 });
      result = await log.verify();
      expect(result.unchained.map((u) => u.id)).toEqual([after, between]);
      expect(result.checked).toBe(4);

      // read(): rejected by default, marked or skipped on request; valid entries are verified.
      const err = await log.read().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnverifiedEntryError);
      expect((err as UnverifiedEntryError).entryId).toBe(after);
      const marked = await log.read({ unverified: "mark" });
      expect(marked.entries.map((e) => [e.data.i, e.verified])).toEqual([
        [0, true],
        [1, true],
        [2, true],
        [99, false],
        [-1, false],
        [3, true],
      ]);
      const reversed = await log.read({ unverified: "skip", reverse: true, limit: 2 });
      expect(reversed.entries.map((e) => e.data.i)).toEqual([3]);
      expect(
        (await log.read({ unverified: "skip", reverse: true, before: reversed.next as string })).entries.map(
          (e) => e.data.i,
        ),
      ).toEqual([2, 1, 0]);

      // tail(): same default.
      const tailErr = await (async () => {
        for await (const _ of log.tail({ from: "start", blockMs: 100 })) {
          // reads until the forged entry
        }
      })().catch((e: unknown) => e);
      expect(tailErr).toBeInstanceOf(UnverifiedEntryError);
      expect((tailErr as UnverifiedEntryError).entryId).toBe(after);
      const seen: Entry<{ i: number }>[] = [];
      for await (const e of log.tail({ from: "start", blockMs: 100, unverified: "mark" })) {
        seen.push(e);
        if (seen.length === 6) break;
      }
      expect(seen.map((e) => e.verified)).toEqual([true, true, true, false, false, true]);
    });
  }

  it("SHA-1 chain: a full rewrite verifies (documented limit); the keyed chain reports every rewritten entry", async () => {
    for (const chain of [true, keyed] as const) {
      const log = new EventLog<{ amount: number }>(clients.redis, name("rewrite"), { prefix, chain });
      for (let i = 1; i <= 3; i++) await log.append({ amount: i });
      // The attacker rewrites every entry (new amounts) with a consistent chain and updates the head.
      const raw = (await clients.admin.xrange(log.keys.stream, "-", "+")) as [string, string[]][];
      await clients.admin.del(log.keys.stream);
      const genesis = chain === true ? "0".repeat(40) : "0".repeat(64);
      let prev = genesis;
      for (const [id, fields] of raw) {
        const seq = fields[fields.indexOf("s") + 1] as string;
        const d = JSON.stringify({ amount: 1000 });
        const h = createHash(chain === true ? "sha1" : "sha256")
          .update(`${prev}\n${id}\n${seq}\n${chain === true ? "" : "k1\n"}${d}`)
          .digest("hex");
        await clients.admin.xadd(
          log.keys.stream,
          id,
          "d",
          d,
          "s",
          seq,
          "p",
          prev,
          "h",
          h,
          ...(chain === true ? [] : ["k", "k1"]),
        );
        prev = h;
      }
      await clients.admin.hset(log.keys.meta, "head", prev);
      const result = await log.verify();
      if (chain === true) expect(result.ok).toBe(true);
      else {
        expect(result.ok).toBe(false);
        expect(result.unchained.map((u) => u.id)).toEqual(raw.map(([id]) => id));
        await expect(log.read()).rejects.toBeInstanceOf(UnverifiedEntryError);
      }
    }
  });

  it("keyed chain: edits, deletions and appends are reported; entries carry the key id", async () => {
    const log = new EventLog<{ i: number }>(clients.redis, name("keyed-edit"), { prefix, chain: keyed });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await log.append({ i })).id);
    const { entries } = await log.read();
    expect(entries.every((e) => e.keyId === "k1" && e.verified === true && e.hash?.length === 64)).toBe(true);
    expect(await log.verify()).toMatchObject({ ok: true, checked: 6, unchainedCount: 0 });
    // Edit entry 1 in place (same id, same chain fields, other data).
    const [, fields] = (
      (await clients.admin.xrange(log.keys.stream, ids[1] as string, ids[1] as string)) as [string, string[]][]
    )[0] as [string, string[]];
    fields[fields.indexOf("d") + 1] = '{"i":1000}';
    await clients.admin.xdel(log.keys.stream, ids[1] as string);
    // An id below the stream's last id can only be re-added into a rebuilt stream: rebuild it.
    const all = (await clients.admin.xrange(log.keys.stream, "-", "+")) as [string, string[]][];
    await clients.admin.del(log.keys.stream);
    const rebuilt = [...all, [ids[1], fields] as [string, string[]]].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [id, f] of rebuilt) if (id !== ids[3]) await clients.admin.xadd(log.keys.stream, id, ...f); // and delete 3
    const result = await log.verify();
    expect(result.unchained).toEqual([{ id: ids[1], reason: expect.stringMatching(/MAC/) }]);
    expect(result).toMatchObject({ ok: false, brokenAt: ids[1] });
    // The deletion of entry 3 breaks the link of entry 4 (reported as the first break after the edit).
    const marked = await log.read({ unverified: "mark" });
    expect(marked.entries.map((e) => e.verified)).toEqual([true, false, true, false, true]);
  });

  it("keyed chain: key rotation verifies old entries with previousKeys; without the old key they are reported", async () => {
    const logName = name("rotate");
    const old = new EventLog<number>(clients.redis, logName, { prefix, chain: keyed });
    for (let i = 0; i < 3; i++) await old.append(i);
    const key2 = Buffer.from("fedcba9876543210fedcba9876543210");
    const rotated = new EventLog<number>(clients.redis, logName, {
      prefix,
      chain: { key: key2, keyId: "k2", previousKeys: { k1: KEY } },
    });
    for (let i = 3; i < 6; i++) await rotated.append(i);
    expect(await rotated.verify()).toMatchObject({ ok: true, checked: 6 });
    expect((await rotated.read()).entries.map((e) => e.keyId)).toEqual(["k1", "k1", "k1", "k2", "k2", "k2"]);
    const forgetful = new EventLog<number>(clients.redis, logName, { prefix, chain: { key: key2, keyId: "k2" } });
    const r = await forgetful.verify();
    expect(r.unchainedCount).toBe(3);
    expect(r.unchained[0]?.reason).toMatch(/unknown key id "k1"/);
  });

  it("keyed chain: concurrent appenders (4 instances, as 4 replicas) keep one unbroken chain", async () => {
    const logName = name("keyed-concurrent");
    const writers = Array.from(
      { length: 4 },
      () => new EventLog<number>(clients.redis, logName, { prefix, chain: keyed }),
    );
    const perWriter = 100;
    const started = performance.now();
    const results = await Promise.all(
      writers.map((w, k) => Promise.all(Array.from({ length: perWriter }, (_, i) => w.append(k * 1000 + i)))),
    );
    const ms = performance.now() - started;
    const ids = results.flat().map((r) => r.id);
    expect(new Set(ids).size).toBe(4 * perWriter);
    const reader = new EventLog<number>(clients.redis, logName, { prefix, chain: keyed });
    expect(await reader.verify()).toMatchObject({ ok: true, checked: 4 * perWriter });
    const { entries } = await reader.read({ limit: 1000 });
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 4 * perWriter }, (_, i) => i + 1));
    console.log(
      `keyed chain, 4 instances x ${perWriter} concurrent appends: ${Math.round((4 * perWriter * 1000) / ms)} appends/s`,
    );
  });

  for (const [label, options] of [
    ["plain", {}],
    ["SHA-1 chain", { chain: true }],
    ["keyed chain", { chain: keyed }],
    ["batched", { batch: true }],
  ] as Array<[string, EventLogOptions]>) {
    it(`${label}: an idempotency key reused with another payload is a conflict; the same payload a duplicate`, async () => {
      const logName = name("conflict");
      const log = new EventLog<{ amount: number }>(clients.redis, logName, { prefix, ...options });
      const first = await log.append({ amount: 10 }, { idempotencyKey: "pay-1" });
      expect(await log.append({ amount: 10 }, { idempotencyKey: "pay-1" })).toEqual({ id: first.id, duplicate: true });
      const err = await log.append({ amount: 99 }, { idempotencyKey: "pay-1" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IdempotencyConflictError);
      expect(err).toMatchObject({
        code: "ERR_EVENTLOG_IDEMPOTENCY_CONFLICT",
        idempotencyKey: "pay-1",
        entryId: first.id,
      });
      const reporting = new EventLog<{ amount: number }>(clients.redis, logName, {
        prefix,
        ...options,
        idempotencyConflict: "report",
      });
      expect(await reporting.append({ amount: 99 }, { idempotencyKey: "pay-1" })).toEqual({
        id: first.id,
        duplicate: true,
        conflict: true,
      });
      expect(await log.length()).toBe(1);
    });
  }
});
