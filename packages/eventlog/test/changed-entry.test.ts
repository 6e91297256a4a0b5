import type { RedisClient } from "@coordis/core";
import { type Entry, EventLog, type EventLogOptions, GapError } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elchanged");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

const CHAINS = [
  ["SHA-1", true],
  ["keyed", { key: Buffer.from("0123456789abcdef0123456789abcdef"), keyId: "k1" }],
] as const;

/** Rewrites the payload of entry `id` in place: the stream is rebuilt with the same ids and every other field kept. */
async function changePayload(admin: RedisClient, stream: string, id: string, payload: string): Promise<void> {
  const all = (await admin.xrange(stream, "-", "+")) as [string, string[]][];
  const rebuild = admin.multi().del(stream);
  for (const [eid, fields] of all) {
    const f = [...fields];
    if (eid === id) f[f.indexOf("d") + 1] = payload;
    rebuild.xadd(stream, eid, ...f);
  }
  await rebuild.exec();
}

/** A chained log of 6 entries ({ i: 0..5 }) whose entry 2 was changed afterwards; returns the log and the ids. */
async function logWithChangedEntry(
  clients: { redis: RedisClient; admin: RedisClient },
  chain: EventLogOptions["chain"],
): Promise<{ log: EventLog<{ i: number }>; ids: string[] }> {
  const log = new EventLog<{ i: number }>(clients.redis, name("changed"), { prefix, chain });
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push((await log.append({ i })).id);
  await changePayload(clients.admin, log.keys.stream, ids[2] as string, '{"i":200}');
  return { log, ids };
}

/** Every page of a read, in reading direction, with `limit` entries a page. */
async function readAll(
  log: EventLog<{ i: number }>,
  options: { limit: number; reverse?: boolean; unverified: "mark" | "skip" },
): Promise<Entry<{ i: number }>[]> {
  const out: Entry<{ i: number }>[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await log.read({
      ...options,
      ...(cursor === undefined ? {} : options.reverse ? { before: cursor } : { after: cursor }),
    });
    out.push(...page.entries);
    if (page.next === undefined) return out;
    cursor = page.next;
  }
}

/** What a tail yields until it yielded the entry `until`, or the error it throws first. */
async function tailUntil(
  log: EventLog<{ i: number }>,
  options: { from: string; unverified: "mark" | "skip" },
  until: string,
): Promise<{ entries: Entry<{ i: number }>[]; error?: unknown }> {
  const entries: Entry<{ i: number }>[] = [];
  try {
    for await (const e of log.tail({ ...options, blockMs: 50, signal: AbortSignal.timeout(5_000) })) {
      entries.push(e);
      if (e.id === until) break;
    }
  } catch (error) {
    return { entries, error };
  }
  return { entries };
}

const verdicts = (entries: Entry<{ i: number }>[]) => entries.map((e) => [e.data.i, e.verified]);

// An entry whose payload was changed is reported (it fails its own hash or MAC). The genuine entry after it links to
// the changed entry's stored hash: the check goes on through it, so exactly the changed entry is flagged, wherever a
// page, a read or a tail starts.
describe("a changed entry of a chained log", () => {
  const clients = sharedClients();

  for (const [mode, chain] of CHAINS) {
    it(`${mode}: read() flags exactly the changed entry, whatever the page size, direction or start`, async () => {
      const { log, ids } = await logWithChangedEntry(clients, chain);
      const expected = [
        [0, true],
        [1, true],
        [200, false],
        [3, true],
        [4, true],
        [5, true],
      ];
      expect(verdicts((await log.read({ unverified: "mark" })).entries)).toEqual(expected);
      for (let limit = 1; limit <= 6; limit++) {
        const forward = await readAll(log, { limit, unverified: "mark" });
        expect(verdicts(forward), `forward, limit ${limit}`).toEqual(expected);
        const skipped = await readAll(log, { limit, unverified: "skip" });
        expect(
          skipped.map((e) => e.data.i),
          `forward, skip, limit ${limit}`,
        ).toEqual([0, 1, 3, 4, 5]);
        const reverse = await readAll(log, { limit, reverse: true, unverified: "mark" });
        expect(verdicts(reverse), `reverse, limit ${limit}`).toEqual([...expected].reverse());
      }
      for (let k = 0; k < 5; k++) {
        const page = await log.read({ after: ids[k] as string, unverified: "mark" });
        expect(verdicts(page.entries), `after entry ${k}`).toEqual(expected.slice(k + 1));
      }
    });

    it(`${mode}: tail() flags exactly the changed entry, wherever it starts`, async () => {
      const { log, ids } = await logWithChangedEntry(clients, chain);
      const newest = ids[5] as string;
      for (let k = 0; k < 5; k++) {
        const { entries, error } = await tailUntil(log, { from: ids[k] as string, unverified: "mark" }, newest);
        expect(error, `from entry ${k}`).toBeUndefined();
        expect(verdicts(entries), `from entry ${k}`).toEqual(
          [
            [0, true],
            [1, true],
            [200, false],
            [3, true],
            [4, true],
            [5, true],
          ].slice(k + 1),
        );
      }
    });

    it(`${mode}: a tail goes on past the changed entry (mark and skip), and still reports a real gap after it`, async () => {
      const { log, ids } = await logWithChangedEntry(clients, chain);
      const marked = await tailUntil(log, { from: "start", unverified: "mark" }, ids[5] as string);
      expect(marked.error).toBeUndefined();
      expect(verdicts(marked.entries)).toEqual([
        [0, true],
        [1, true],
        [200, false],
        [3, true],
        [4, true],
        [5, true],
      ]);
      const skipped = await tailUntil(log, { from: "start", unverified: "skip" }, ids[5] as string);
      expect(skipped.error).toBeUndefined();
      expect(skipped.entries.map((e) => e.data.i)).toEqual([0, 1, 3, 4, 5]);

      // Live: an entry appended after the tail passed the changed one is yielded as verified.
      const live: Entry<{ i: number }>[] = [];
      const iterator = log.tail({ from: ids[1] as string, blockMs: 50, unverified: "mark" })[Symbol.asyncIterator]();
      try {
        for (let i = 0; i < 4; i++) live.push((await iterator.next()).value as Entry<{ i: number }>);
        await log.append({ i: 6 });
        live.push((await iterator.next()).value as Entry<{ i: number }>);
      } finally {
        await iterator.return?.();
      }
      expect(verdicts(live)).toEqual([
        [200, false],
        [3, true],
        [4, true],
        [5, true],
        [6, true],
      ]);

      // The entry right after the changed one deleted: still a gap, one sequence number missed.
      await clients.admin.xdel(log.keys.stream, ids[3] as string);
      const gap = await tailUntil(log, { from: "start", unverified: "mark" }, ids[5] as string);
      expect(verdicts(gap.entries)).toEqual([
        [0, true],
        [1, true],
        [200, false],
      ]);
      expect(gap.error).toBeInstanceOf(GapError);
      expect(gap.error).toMatchObject({ after: ids[2], missed: 1 });
    });

    it(`${mode}: two changed entries in a row: both flagged, the entries after them valid, read or tailed`, async () => {
      const { log, ids } = await logWithChangedEntry(clients, chain);
      await changePayload(clients.admin, log.keys.stream, ids[3] as string, '{"i":300}');
      const expected = [
        [0, true],
        [1, true],
        [200, false],
        [300, false],
        [4, true],
        [5, true],
      ];
      for (let limit = 1; limit <= 6; limit++) {
        expect(verdicts(await readAll(log, { limit, unverified: "mark" })), `limit ${limit}`).toEqual(expected);
      }
      for (let k = 0; k < 5; k++) {
        const { entries, error } = await tailUntil(
          log,
          { from: ids[k] as string, unverified: "mark" },
          ids[5] as string,
        );
        expect(error, `from entry ${k}`).toBeUndefined();
        expect(verdicts(entries), `from entry ${k}`).toEqual(expected.slice(k + 1));
      }
    });
  }
});
