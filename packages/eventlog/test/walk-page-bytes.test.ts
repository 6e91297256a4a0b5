import type { CoordisEvent, RedisClient } from "@coordis/core";
import { EventLog, type EventLogOptions } from "@coordis/eventlog";
import { EventRecorder, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("elvbytes");
const KEY = Buffer.from("0123456789abcdef0123456789abcdef");

/** The bound the README gives for one page of verify()'s walk. */
const PAGE_BYTES = 4 * 1024 * 1024;
/**
 * The server closes any client whose output buffer (the reply it builds before sending it) passes this: a page of
 * verify() above the bound (plus Redis' own framing and allocation slack) kills the connection and fails the walk.
 */
const HARD_LIMIT = PAGE_BYTES + 512 * 1024;

let n = 0;
const name = (label: string) => `${label}-${n++}`;

/** A JSON string event of about `bytes` bytes, with its index in it. */
const big = (i: number, bytes: number) => `${i}:${"x".repeat(bytes - 16)}`;

/** Bytes of the strings in a reply. */
function bytesOf(reply: unknown): number {
  if (typeof reply === "string") return Buffer.byteLength(reply);
  if (Array.isArray(reply)) return reply.reduce((sum: number, r) => sum + bytesOf(r), 0);
  return 8;
}

const MODES: Array<[string, EventLogOptions]> = [
  ["SHA-1 chain", { chain: true }],
  ["keyed chain", { chain: { key: KEY, keyId: "k1" } }],
];

describe("internal walks bound each reply by bytes", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ config: { "client-output-buffer-limit": ["normal", HARD_LIMIT, 0, 0] } });
    redis = server.client();
    admin = server.adminClient();
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(async () => {
    await server.stop();
  });

  /**
   * Records the bytes of entries in each reply of verify()'s page script for `log` on `client` (pass-through wrappers
   * of the client's EVALSHA and EVAL: the page script is the one called with the log's stream and meta keys and a
   * range start), and runs `between` once after the first page was answered, before verify() gets that answer (so
   * before it sends the next page).
   */
  function recordPages(client: RedisClient, log: EventLog<string>, between?: () => Promise<unknown>) {
    const sizes: number[] = [];
    const target = client as unknown as Record<"evalsha" | "eval", (...args: unknown[]) => Promise<unknown>>;
    const originals = { evalsha: target.evalsha, eval: target.eval };
    let first = true;
    for (const cmd of ["evalsha", "eval"] as const) {
      target[cmd] = (...args: unknown[]) => {
        const reply = originals[cmd].apply(client, args);
        const [, , stream, meta, start] = args;
        const page = stream === log.keys.stream && meta === log.keys.meta && /^(-|\()/.test(String(start));
        if (!page) return reply;
        return reply.then(async (r) => {
          // The page's entries (the reply's fourth element), which the bound is about.
          sizes.push(bytesOf((r as unknown[])[3]));
          if (first && between !== undefined) {
            first = false;
            await between();
          }
          return r;
        });
      };
    }
    return { sizes, restore: () => Object.assign(target, originals) };
  }

  /** Rewrites entry `id` of a stream with `d` changed, keeping every id (the stream is rebuilt in small steps). */
  async function change(stream: string, id: string) {
    await admin.rename(stream, `${stream}:old`);
    let start = "-";
    for (;;) {
      const chunk = (await admin.xrange(`${stream}:old`, start, "+", "COUNT", 8)) as Array<[string, string[]]>;
      for (const [eid, fields] of chunk) {
        const out = [...fields];
        if (eid === id) out[out.indexOf("d") + 1] = JSON.stringify("forged");
        await admin.xadd(stream, eid, ...out);
      }
      const last = chunk.at(-1);
      if (chunk.length < 8 || last === undefined) break;
      start = `(${last[0]}`;
    }
    await admin.del(`${stream}:old`);
  }

  for (const [label, options] of MODES) {
    it(`${label}: a log of 256 KiB entries verifies in pages of at most ${PAGE_BYTES} bytes`, async () => {
      const log = new EventLog<string>(redis, name("large"), { prefix, ...options });
      const size = 256 * 1024;
      const count = 48;
      for (let i = 0; i < count; i++) await log.append(big(i, size));
      const pages = recordPages(redis, log);
      const result = await log.verify().finally(pages.restore);
      expect(result).toEqual({ ok: true, checked: count, unchained: [], unchainedCount: 0 });
      // No page was above the bound (nor did the server close the connection), and the walk took about as many pages
      // as the bound requires: whole entries per page, at most one more page to see the end.
      expect(Math.max(...pages.sizes)).toBeLessThanOrEqual(PAGE_BYTES);
      const least = Math.ceil((count * size) / PAGE_BYTES);
      expect(pages.sizes.length).toBeGreaterThanOrEqual(least);
      expect(pages.sizes.length).toBeLessThanOrEqual(least + 2);
    });

    it(`${label}: sizes changing mid-walk (small, large, small) verify, and a problem is reported at its entry`, async () => {
      const log = new EventLog<string>(redis, name("mixed"), { prefix, ...options });
      const ids: string[] = [];
      const add = async (count: number, size: number) => {
        for (let i = 0; i < count; i++) ids.push((await log.append(big(ids.length, size))).id);
      };
      await add(1500, 100);
      const largeFrom = ids.length;
      await add(40, 200 * 1024);
      const smallFrom = ids.length;
      await add(1500, 100);
      const pages = recordPages(redis, log);
      expect(await log.verify()).toEqual({ ok: true, checked: ids.length, unchained: [], unchainedCount: 0 });
      pages.restore();
      expect(Math.max(...pages.sizes)).toBeLessThanOrEqual(PAGE_BYTES);
      // Small entries still go 1000 to a page: 3040 entries, 8 MiB of them in the large run.
      expect(pages.sizes.length).toBeLessThanOrEqual(3 + 2 + 2);

      // A deletion in the second small run: the entry after it no longer links.
      const deleted = ids[smallFrom + 700] as string;
      await admin.xdel(log.keys.stream, deleted);
      let result = await log.verify();
      expect(result).toMatchObject({ ok: false, brokenAt: ids[smallFrom + 701], checked: ids.length - 1 });
      expect(result.reason).toMatch(/previous-hash does not match/);
      expect(result.unchainedCount).toBe(0);

      // An edit of a large entry in the middle of the large run: that entry is reported, the one after it is not.
      const changed = ids[largeFrom + 25] as string;
      await change(log.keys.stream, changed);
      result = await log.verify();
      expect(result).toMatchObject({ ok: false, brokenAt: changed, checked: ids.length - 2, unchainedCount: 1 });
      expect(result.unchained.map((u) => u.id)).toEqual([changed]);
      expect(result.reason).toMatch(/does not match its (hash|MAC)/);
    });

    it(`${label}: entries appended (and trimmed) while verify() walks large entries are checked too`, async () => {
      for (const retention of [{}, { maxLen: 30 }]) {
        const log = new EventLog<string>(redis, name("live"), { prefix, ...options, ...retention });
        const size = 200 * 1024;
        for (let i = 0; i < 40; i++) await log.append(big(i, size));
        // Appended (and trimmed) after the walk's first page, before its second.
        const pages = recordPages(redis, log, () =>
          Promise.all(Array.from({ length: 30 }, (_, i) => log.append(big(40 + i, size)))),
        );
        const result = await log.verify().finally(pages.restore);
        expect(result).toMatchObject({ ok: true, unchained: [], unchainedCount: 0 });
        expect(Math.max(...pages.sizes)).toBeLessThanOrEqual(PAGE_BYTES);
        expect(pages.sizes.length).toBeGreaterThan(2);
        // Without retention every entry is checked, the 30 appended mid-walk too; with it, the walk went on at the
        // new anchor and to the real end.
        if (!("maxLen" in retention)) expect(result.checked).toBe(70);
        else expect(result.checked).toBeGreaterThanOrEqual(30);
        expect(await log.verify()).toMatchObject({ ok: true, unchainedCount: 0 });
      }
    });
  }

  it("a tail resumed after a run of large entries without sequence numbers reads back in pages of at most the bound", async () => {
    const events = new EventRecorder<CoordisEvent>();
    const log = new EventLog<string>(redis, name("tail-walk"), { prefix, observer: { onEvent: events.record } });
    await log.append("first");
    // 40 entries of 200 KiB that something else added (no sequence number): the tail walks back over all of them to
    // the entry before them for the sequence number it continues from.
    let cursor = "";
    for (let i = 0; i < 40; i++) {
      cursor = (await admin.xadd(log.keys.stream, "*", "d", JSON.stringify(big(i, 200 * 1024)))) as string;
    }
    await log.append("next");
    const controller = new AbortController();
    const next = log.tail({ from: cursor, signal: controller.signal, blockMs: 50 })[Symbol.asyncIterator]().next();
    // The first entry after the cursor, or the first error the tail reports (a connection the server closed).
    const first = await Promise.race([next, events.waitFor((e) => e.type === "tail-error", { timeoutMs: 30_000 })]);
    controller.abort();
    expect(events.items.filter((e) => e.type === "tail-error")).toEqual([]);
    expect(first).toMatchObject({ done: false, value: { data: "next", seq: 2 } });
  });

  for (const [label, options] of MODES) {
    it(`${label}: read() of large entries checks its first entry against what it needs, at most the bound per reply`, async () => {
      const log = new EventLog<string>(redis, name("read"), { prefix, ...options });
      const size = 300 * 1024;
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await log.append(big(i, size))).id);
      // A run of 15 large entries something else added, then an entry of the chain: it links to the entry before the
      // run, which lies more than the bound back.
      const foreign: string[] = [];
      for (let i = 0; i < 15; i++) {
        foreign.push((await admin.xadd(log.keys.stream, "*", "d", JSON.stringify(big(i, size)))) as string);
      }
      const { id: after } = await log.append(big(99, size));
      const sizes: number[] = [];
      const target = redis as unknown as Record<"evalsha" | "eval", (...args: unknown[]) => Promise<unknown>>;
      const originals = { evalsha: target.evalsha, eval: target.eval };
      for (const cmd of ["evalsha", "eval"] as const) {
        target[cmd] = (...args: unknown[]) =>
          originals[cmd].apply(redis, args).then((r) => {
            if (args[2] === log.keys.stream) sizes.push(bytesOf(r));
            return r;
          });
      }
      try {
        // A page of one entry of the chain: valid, whatever lies between it and the entry it follows.
        const page = await log.read({ after: foreign.at(-1) as string, limit: 1 });
        expect(page.entries.map((e) => [e.id, e.verified])).toEqual([[after, true]]);
        // Pages of the log's middle, forward and reverse: one entry before a page is enough to check it (a page reads
        // limit + 1 entries, to know whether more follow).
        sizes.length = 0;
        const middle = await log.read({ after: ids[3] as string, limit: 5 });
        const reverse = await log.read({ reverse: true, before: foreign[0] as string, limit: 5 });
        expect(middle.entries.every((e) => e.verified)).toBe(true);
        expect(reverse.entries.every((e) => e.verified)).toBe(true);
        expect(sizes).toHaveLength(2);
        for (const s of sizes) expect(s).toBeLessThanOrEqual((5 + 1 + 1) * (size + 1024));
        // Marked, not hidden: the foreign entries are still reported.
        const marked = await log.read({ after: foreign[0] as string, limit: 3, unverified: "mark" });
        expect(marked.entries.map((e) => e.verified)).toEqual([false, false, false]);
      } finally {
        Object.assign(target, originals);
      }
      expect(Math.max(...sizes)).toBeLessThanOrEqual(PAGE_BYTES * 2);
    });
  }
});
