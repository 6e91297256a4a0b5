import { type Entry, EventLog, GapError } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("eltailresume");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

/** The stream id right after `id` (same millisecond, sequence part + 1). */
const idAfter = (id: string) => {
  const [ms, seq] = id.split("-");
  return `${ms}-${BigInt(seq as string) + 1n}`;
};

/** The entries a tail yields until it has yielded `count` of them, or the error it throws first. */
async function tailed<T>(
  log: EventLog<T>,
  from: string,
  count: number,
): Promise<{ entries: Entry<T>[]; error?: unknown }> {
  const entries: Entry<T>[] = [];
  try {
    for await (const e of log.tail({ from, blockMs: 50, signal: AbortSignal.timeout(5_000) })) {
      entries.push(e);
      if (entries.length === count) break;
    }
  } catch (error) {
    return { entries, error };
  }
  return { entries };
}

/** Appends `from`..`to` (the data is the number) and returns the ids, indexed by the number. */
async function appendRange(log: EventLog<number>, from: number, to: number): Promise<Record<number, string>> {
  const ids: Record<number, string> = {};
  for (let i = from; i <= to; i++) ids[i] = (await log.append(i)).id;
  return ids;
}

// A reader keeps the id of the last entry it handled (an SSE client's Last-Event-ID). When that entry and the ones
// after it are deleted before it comes back, the tail reports the gap; its resumeAfter must go on after the gap, not
// replay the log from its start (which reported the same gap again when it got there).
describe("a tail resumed from a cursor whose own entry was deleted", () => {
  const clients = sharedClients();

  it("resumeAfter goes on from the first entry after the gap, and later gaps are counted exactly", async () => {
    const log = new EventLog<number>(clients.redis, name("deleted"), { prefix });
    const ids = await appendRange(log, 1, 10);
    await clients.admin.xdel(log.keys.stream, ids[5] as string, ids[6] as string, ids[9] as string);

    const gap = await tailed(log, ids[5] as string, 1);
    expect(gap.entries).toEqual([]);
    expect(gap.error).toBeInstanceOf(GapError);
    // Whether the cursor's own entry was the one just before the gap cannot be known: missed is unknown.
    expect(gap.error).toMatchObject({ after: ids[5], missed: undefined });
    const resumeAfter = (gap.error as GapError).resumeAfter as string;

    // Following resumeAfter yields what follows the gap, then reports the next deletion with its exact count.
    const resumed = await tailed(log, resumeAfter, 4);
    expect(resumed.entries.map((e) => [e.data, e.seq])).toEqual([
      [7, 7],
      [8, 8],
    ]);
    expect(resumed.error).toBeInstanceOf(GapError);
    expect(resumed.error).toMatchObject({ after: ids[8], missed: 1 });

    const rest = await tailed(log, (resumed.error as GapError).resumeAfter as string, 1);
    expect(rest.error).toBeUndefined();
    expect(rest.entries.map((e) => e.data)).toEqual([10]);
  });

  // A cursor no entry ever had (a time between two entries), with an entry deleted further on: the entries around the
  // cursor follow each other (sequence numbers 2 and 3), so nothing was lost there. The tail used to throw a GapError
  // at once (resumeAfter just before entry 3), then, following it, reported the same deletion again at entry 6.
  it("a cursor between two consecutive entries, with a deletion further on: the deletion is reported once, where it is", async () => {
    const log = new EventLog<number>(clients.redis, name("between"), { prefix });
    const ids = await appendRange(log, 1, 2);
    const [ms2] = (ids[2] as string).split("-");
    // Entry 3 in a later millisecond of the server's clock, so that ids lie between entries 2 and 3.
    await waitUntil("the server's clock past entry 2", async () => {
      const [s, us] = await clients.redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000) > Number(ms2);
    });
    Object.assign(ids, await appendRange(log, 3, 6));
    await clients.admin.xdel(log.keys.stream, ids[5] as string);
    const cursor = idAfter(ids[2] as string);

    const { entries, error } = await tailed(log, cursor, 4);
    expect(entries.map((e) => e.data)).toEqual([3, 4]);
    expect(error).toBeInstanceOf(GapError);
    expect(error).toMatchObject({ after: ids[4], missed: 1 });
    const rest = await tailed(log, (error as GapError).resumeAfter as string, 1);
    expect(rest.error).toBeUndefined();
    expect(rest.entries.map((e) => e.data)).toEqual([6]);
  });

  it("every entry after the cursor deleted: resumeAfter is the log's last id, and the tail goes on with new entries", async () => {
    const log = new EventLog<number>(clients.redis, name("deleted-to-end"), { prefix });
    const ids = await appendRange(log, 1, 3);
    await clients.admin.xdel(log.keys.stream, ids[2] as string, ids[3] as string);

    const gap = await tailed(log, ids[2] as string, 1);
    expect(gap.entries).toEqual([]);
    expect(gap.error).toBeInstanceOf(GapError);
    expect(gap.error).toMatchObject({ after: ids[2], resumeAfter: ids[3], missed: undefined });

    const appended = await log.append(4);
    const resumed = await tailed(log, ids[3] as string, 1);
    expect(resumed.error).toBeUndefined();
    expect(resumed.entries.map((e) => [e.id, e.data])).toEqual([[appended.id, 4]]);
  });
});

// A log without a chain yields an entry that something else added (a raw XADD, without a sequence number), so a
// reader may keep its id as its cursor. Resumed from it, the tail checks the next entry against the sequence number
// of the nearest entry before it that has one, as the running tail did: a deletion after it is a gap.
describe("a tail resumed from an entry something else added", () => {
  const clients = sharedClients();

  it("reports an entry deleted after it, with the exact count missed", async () => {
    const log = new EventLog<number>(clients.redis, name("foreign"), { prefix });
    await appendRange(log, 1, 3);
    const foreign = (await clients.admin.xadd(log.keys.stream, "*", "d", "-1")) as string;
    const ids = await appendRange(log, 4, 6);
    await clients.admin.xdel(log.keys.stream, ids[4] as string);

    const gap = await tailed(log, foreign, 2);
    expect(gap.entries).toEqual([]);
    expect(gap.error).toBeInstanceOf(GapError);
    expect(gap.error).toMatchObject({ after: foreign, missed: 1 });
    const resumed = await tailed(log, (gap.error as GapError).resumeAfter as string, 2);
    expect(resumed.error).toBeUndefined();
    expect(resumed.entries.map((e) => e.data)).toEqual([5, 6]);
  });

  it("also behind many entries without a sequence number, and yields on without a gap when none was deleted", async () => {
    const log = new EventLog<number>(clients.redis, name("foreign-run"), { prefix });
    await appendRange(log, 1, 2);
    let foreign = "";
    for (let i = 0; i < 40; i++) foreign = (await clients.admin.xadd(log.keys.stream, "*", "d", String(-i))) as string;
    const ids = await appendRange(log, 3, 4);

    const whole = await tailed(log, foreign, 2);
    expect(whole.error).toBeUndefined();
    expect(whole.entries.map((e) => e.data)).toEqual([3, 4]);

    await clients.admin.xdel(log.keys.stream, ids[3] as string);
    const gap = await tailed(log, foreign, 1);
    expect(gap.entries).toEqual([]);
    expect(gap.error).toBeInstanceOf(GapError);
    expect(gap.error).toMatchObject({ after: foreign, missed: 1 });
  });

  // Retention trimmed past the cursor, and the oldest entry kept is one something else added: nothing tells whether
  // it is the log's first, so the trim is reported as from any other kept entry (the reads checked nothing and
  // yielded on from it, skipping the trimmed entries silently).
  it("a cursor trimmed away when the oldest kept entry is one something else added: a gap", async () => {
    const log = new EventLog<number>(clients.redis, name("foreign-oldest"), { prefix });
    const ids = await appendRange(log, 1, 3);
    const foreign = (await clients.admin.xadd(log.keys.stream, "*", "d", "-1")) as string;
    await appendRange(log, 4, 5);
    await clients.admin.xtrim(log.keys.stream, "MINID", foreign);

    const { entries, error } = await tailed(log, ids[2] as string, 3);
    expect(entries).toEqual([]);
    expect(error).toBeInstanceOf(GapError);
    expect(error).toMatchObject({ after: ids[2], missed: undefined });
    const resumed = await tailed(log, (error as GapError).resumeAfter as string, 3);
    expect(resumed.error).toBeUndefined();
    expect(resumed.entries.map((e) => e.data)).toEqual([-1, 4, 5]);
  });

  it("with no entry before it that has a sequence number, entries removed before it are no gap", async () => {
    const log = new EventLog<number>(clients.redis, name("foreign-first"), { prefix });
    const ids = await appendRange(log, 1, 2);
    const foreign = (await clients.admin.xadd(log.keys.stream, "*", "d", "-1")) as string;
    await appendRange(log, 3, 4);
    await clients.admin.xdel(log.keys.stream, ids[1] as string, ids[2] as string);

    const { entries, error } = await tailed(log, foreign, 2);
    expect(error).toBeUndefined();
    expect(entries.map((e) => e.data)).toEqual([3, 4]);
  });
});
