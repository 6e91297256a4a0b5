import { createHash } from "node:crypto";
import { eventlogScripts } from "@coordis/eventlog";
import { mulberry32, testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";
import { appendBeforeFastPath } from "./fixtures/append-before-fast-path.js";

const prefix = testPrefix("eldiff");
let n = 0;
const clients = sharedClients();

// A plain append (no idempotency key, not chained) returns before the script builds any function, with retention
// building only retention's: what it stores and replies must stay what the script did before, append after append.
describe("plain append: the script's own path and the one it had before", () => {
  /** Every entry's fields, the meta hash (but its last id, checked per append) and the length of one log. */
  async function state(base: string) {
    const entries = (await clients.redis.xrange(`${base}:s`, "-", "+")) as [string, string[]][];
    const [seq, head, anchor] = await clients.redis.hmget(`${base}:m`, "seq", "head", "anchor");
    const meta = { seq, head, anchor };
    return { entries, meta, len: await clients.redis.xlen(`${base}:s`) };
  }

  it.each(["0", "0 10 0", "0 1 0", "0 0 86400000", "0 25 86400000"])(
    "mode %s: the same replies, entries, sequence numbers, meta hash and trimming",
    async (mode) => {
      const old = `${prefix}:{old-${++n}}`;
      const now = `${prefix}:{new-${n}}`;
      for (let i = 1; i <= 150; i++) {
        const payload = JSON.stringify({ i, pad: "x".repeat(i % 7) });
        const run = (src: string, base: string) =>
          clients.redis.eval(src, 3, `${base}:s`, `${base}:m`, `${base}:d`, payload, 0, "", mode);
        const a = await run(appendBeforeFastPath, old);
        const b = await run(eventlogScripts.append.source, now);
        expect(typeof a).toBe("string");
        expect(typeof b).toBe("string");
        // Entry ids are server time: each log's reply is its own last entry, recorded as its last id.
        expect(await clients.redis.hget(`${old}:m`, "last")).toBe(a);
        expect(await clients.redis.hget(`${now}:m`, "last")).toBe(b);
      }
      const [before, after] = [await state(old), await state(now)];
      expect(after.len).toBe(before.len);
      expect(after.entries.map(([, f]) => f)).toEqual(before.entries.map(([, f]) => f));
      expect(after.meta).toEqual(before.meta);
      expect(after.meta).toEqual({ seq: "150", head: null, anchor: null });
      expect(await clients.redis.exists(`${now}:d`)).toBe(0);
    },
  );
});

// An append with an idempotency key, and a chained append without one, have their own straight-line paths too; a
// chained append that also has a key or retention, or whose XADD is refused, runs the general code.
describe("idempotent and chained appends: the script's own paths and the one it had before", () => {
  const run = (src: string, base: string, payload: string, windowMs: number, digest: string, mode: string) =>
    clients.redis.eval(src, 3, `${base}:s`, `${base}:m`, `${base}:d`, payload, windowMs, digest, mode);

  /** One log's entries, meta hash and idempotency record, with every id written as its entry's position. */
  async function state(base: string) {
    const entries = (await clients.redis.xrange(`${base}:s`, "-", "+")) as [string, string[]][];
    const pos = new Map(entries.map(([id], i) => [id, `#${i}`]));
    const name = (text: string | null | undefined) =>
      text == null ? null : text.replace(/\d+-\d+/g, (id) => pos.get(id) ?? id);
    const [seq, last, head, anchor] = await clients.redis.hmget(`${base}:m`, "seq", "last", "head", "anchor");
    const record = await clients.redis.get(`${base}:d`);
    const ttl = await clients.redis.pttl(`${base}:d`);
    return {
      fields: entries.map(([, f]) => f),
      meta: { seq, last: name(last), head, anchor: name(anchor) },
      record: name(record),
      ttl: ttl > 0 ? "set" : ttl,
      name,
    };
  }

  it.each(["0", "0 4 0", "0 0 86400000"])(
    "mode %s with idempotency keys: the same replies, entries, meta hash and records",
    async (mode) => {
      const random = mulberry32(1009 + mode.length);
      for (let i = 1; i <= 120; i++) {
        const old = `${prefix}:{iold-${++n}}`;
        const now = `${prefix}:{inew-${n}}`;
        // A few appends on one key: reuses with the same or another payload, with and without a digest.
        const calls = 1 + Math.floor(random() * 4);
        for (let c = 0; c < calls; c++) {
          const payload = JSON.stringify({ v: Math.floor(random() * 2) });
          const digest = random() < 0.25 ? "" : createHash("sha1").update(payload).digest("hex");
          const windowMs = random() < 0.5 ? 60_000 : 86_400_000;
          const a = await run(appendBeforeFastPath, old, payload, windowMs, digest, mode);
          const b = await run(eventlogScripts.append.source, now, payload, windowMs, digest, mode);
          const [sa, sb] = [await state(old), await state(now)];
          const reply = (r: unknown, st: typeof sa) =>
            typeof r === "string" ? st.name(r) : [st.name((r as [string, number])[0]), (r as [string, number])[1]];
          expect(reply(b, sb)).toEqual(reply(a, sa));
          expect({ ...sb, name: 0 }).toEqual({ ...sa, name: 0 });
        }
      }
    },
  );

  /** Appends 40 chained entries to both logs; ids are chosen by the script, so both logs must hold the same bytes. */
  async function chainedTwins(old: string, now: string, mode: string, keyed: boolean) {
    for (let i = 1; i <= 40; i++) {
      const payload = JSON.stringify({ i });
      const windowMs = keyed && i % 3 !== 0 ? 60_000 : 0;
      const a = await run(appendBeforeFastPath, old, payload, windowMs, "", mode);
      const b = await run(eventlogScripts.append.source, now, payload, windowMs, "", mode);
      expect(b).toEqual(a);
    }
    const entries = async (base: string) => clients.redis.xrange(`${base}:s`, "-", "+");
    const meta = async (base: string) => clients.redis.hmget(`${base}:m`, "seq", "last", "head", "anchor");
    expect(await entries(now)).toEqual(await entries(old));
    expect(await meta(now)).toEqual(await meta(old));
  }

  it.each([
    ["1", false],
    ["1", true],
    ["1 10 0", false],
  ] as const)("mode %s (keys: %s) within one millisecond: the same ids, hashes and meta hash", async (mode, keyed) => {
    const old = `${prefix}:{cold-${++n}}`;
    const now = `${prefix}:{cnew-${n}}`;
    // A last id an hour ahead of server time: every id is last id + 1, the same in both logs.
    const ahead = `${Date.now() + 3_600_000}-5`;
    for (const base of [old, now])
      await clients.redis.hset(`${base}:m`, "seq", "7", "last", ahead, "head", "a".repeat(40));
    await chainedTwins(old, now, mode, keyed);
    expect((await clients.redis.hget(`${now}:m`, "last"))?.startsWith(ahead.split("-")[0] as string)).toBe(true);
  });

  it("a chained XADD refused after an entry added by something else: the same fallback ids", async () => {
    const old = `${prefix}:{fold-${++n}}`;
    const now = `${prefix}:{fnew-${n}}`;
    // Something else added an entry an hour ahead: the script's own id is refused, the next goes after that entry.
    const foreign = `${Date.now() + 3_600_000}-9`;
    for (const base of [old, now]) await clients.redis.xadd(`${base}:s`, foreign, "x", "1");
    await chainedTwins(old, now, "1", false);
    const ids = (await clients.redis.xrange(`${now}:s`, "-", "+")).map(([id]) => id);
    expect(ids[1]).toBe(`${foreign.split("-")[0]}-10`);
  });

  it("chained at server time: each entry links to the one before with sha1(prev, id, seq, payload)", async () => {
    const old = `${prefix}:{told-${++n}}`;
    const now = `${prefix}:{tnew-${n}}`;
    for (let i = 1; i <= 60; i++) {
      const payload = JSON.stringify({ i });
      const a = await run(appendBeforeFastPath, old, payload, 0, "", "1");
      const b = await run(eventlogScripts.append.source, now, payload, 0, "", "1");
      expect(typeof a).toBe("string");
      expect(typeof b).toBe("string");
    }
    let prev = "0".repeat(40);
    const entries = (await clients.redis.xrange(`${now}:s`, "-", "+")) as [string, string[]][];
    const olds = (await clients.redis.xrange(`${old}:s`, "-", "+")) as [string, string[]][];
    expect(entries.map(([, f]) => [f[0], f[2], f[3]])).toEqual(olds.map(([, f]) => [f[0], f[2], f[3]]));
    for (const [i, [id, f]] of entries.entries()) {
      const h = createHash("sha1")
        .update(`${prev}\n${id}\n${i + 1}\n${f[1]}`)
        .digest("hex");
      expect(f).toEqual(["d", f[1], "s", String(i + 1), "p", prev, "h", h]);
      prev = h;
    }
    expect(await clients.redis.hmget(`${now}:m`, "seq", "last", "head", "anchor")).toEqual([
      "60",
      entries.at(-1)?.[0],
      prev,
      null,
    ]);
  });

  it.each(["0", "1"])(
    "mode %s: an idempotency record of another type fails the call and writes nothing",
    async (mode) => {
      const base = `${prefix}:{wrong-${++n}}`;
      await clients.redis.hset(`${base}:d`, "f", "v");
      await expect(run(eventlogScripts.append.source, base, "{}", 60_000, "", mode)).rejects.toThrow(/WRONGTYPE/);
      expect(await clients.redis.exists(`${base}:s`, `${base}:m`)).toBe(0);
    },
  );
});
