import type { RedisClient } from "@coordis/core";
import { type Entry, EventLog, GapError } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("eltaillost");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

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

/**
 * Waits until Redis' clock has passed the millisecond of entry `id`. A lost log's first new id is server time, so from
 * then on it lies after that entry (appended within the same millisecond, it could be that entry's own id, after which
 * no read returns it: a lost log refilled that fast cannot be told apart from the old one).
 */
async function clockPast(admin: RedisClient, id: string): Promise<void> {
  const ms = Number(id.split("-")[0]);
  await waitUntil("the server clock to pass the entry's millisecond", async () => {
    const [s, us] = (await admin.time()) as [string | number, string | number];
    return Number(s) * 1000 + Math.floor(Number(us) / 1000) > ms;
  });
}

// A tail resumed from a cursor (an SSE client's Last-Event-ID) on a log that was lost and started over (its keys
// deleted, or a Redis restart without persistence) must not yield the new log as if it continued after the cursor:
// the entries appended after the cursor in the lost log are gone. Stream ids are time-based, so the new log's entries
// all come after the cursor; what gives the loss away is that the log now begins (sequence number 1) after it.
describe("a tail resumed from a cursor of a log that was lost", () => {
  const clients = sharedClients();

  it("the keys were deleted and the log refilled: GapError, missed unknown, nothing yielded", async () => {
    const log = new EventLog<number>(clients.redis, name("deleted"), { prefix });
    const cursor = await log.append(1);
    await log.append(2);
    await log.append(3);
    await clients.admin.del(log.keys.stream, log.keys.meta);
    await clockPast(clients.admin, cursor.id);
    const restarted = await log.append(100);

    const { entries, error } = await tailed(log, cursor.id, 1);
    expect(entries).toEqual([]);
    expect(error).toBeInstanceOf(GapError);
    expect(error).toMatchObject({ after: cursor.id, missed: undefined });
    // Going on knowingly from resumeAfter yields the new log from its start.
    const resumed = await tailed(log, (error as GapError).resumeAfter as string, 1);
    expect(resumed.error).toBeUndefined();
    expect(resumed.entries.map((e) => [e.id, e.data, e.seq])).toEqual([[restarted.id, 100, 1]]);
  });

  it("also on a chained log, and when the log is still empty when the tail resumes", async () => {
    const log = new EventLog<number>(clients.redis, name("empty"), { prefix, chain: true });
    const cursor = await log.append(1);
    await log.append(2);
    await clients.admin.del(log.keys.stream, log.keys.meta);
    await clockPast(clients.admin, cursor.id);
    const iterator = log.tail({ from: cursor.id, blockMs: 50 })[Symbol.asyncIterator]();
    // Handled at once: the tail fails as soon as it reads the first entry of the new log.
    const next = iterator.next().then(
      (r) => r,
      (e: unknown) => e,
    );
    await log.append(100);
    const error = await next;
    await iterator.return?.();
    expect(error).toBeInstanceOf(GapError);
    expect(error).toMatchObject({ after: cursor.id, missed: undefined });
  });

  it("a sound log is not reported: resumed from an entry, from between two entries, from 0-0, from after the last", async () => {
    const log = new EventLog<number>(clients.redis, name("sound"), { prefix });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await log.append(i)).id);
    // Entry 3 in a later millisecond than entry 2, so that ids that are no entry lie between them.
    const ms2 = Number((ids[2] as string).split("-")[0]);
    await waitUntil("the server clock passed entry 2", async () => {
      const [s, us] = (await clients.admin.time()) as [string | number, string | number];
      return Number(s) * 1000 + Math.floor(Number(us) / 1000) > ms2;
    });
    ids.push((await log.append(3)).id);

    const fromEntry = await tailed(log, ids[1] as string, 2);
    expect(fromEntry.error).toBeUndefined();
    expect(fromEntry.entries.map((e) => e.data)).toEqual([2, 3]);

    const fromStart = await tailed(log, "0-0", 4);
    expect(fromStart.error).toBeUndefined();
    expect(fromStart.entries.map((e) => e.data)).toEqual([0, 1, 2, 3]);

    // An id that is no entry but lies between two entries of the log (as a timestamp would).
    const between = `${ms2}-${BigInt((ids[2] as string).split("-")[1] as string) + 1n}`;
    const fromBetween = await tailed(log, between, 1);
    expect(fromBetween.error).toBeUndefined();
    expect(fromBetween.entries.map((e) => e.data)).toEqual([3]);

    // Resumed from the newest entry while nothing new is appended: it waits; then an append is yielded.
    const iterator = log.tail({ from: ids[3] as string, blockMs: 50 })[Symbol.asyncIterator]();
    const next = iterator.next();
    await log.append(4);
    expect(((await next).value as Entry<number>).data).toBe(4);
    await iterator.return?.();
  });
});

describe("a tail resumed after a Redis restart without persistence", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true }); // no persistence: a restart loses everything
    redis = server.client();
    admin = server.adminClient();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("reports the gap, whether the tail resumes before or after the first append to the new log", async () => {
    const log = new EventLog<number>(redis, "audit", { prefix });
    const cursor = await log.append(1);
    await log.append(2);
    await log.append(3);
    await server.restart();
    await waitUntil("the log is empty after the restart", async () => (await log.length().catch(() => -1)) === 0);

    // Resumed while the new log is still empty: the tail blocks, then fails on the new log's first entry.
    const iterator = log.tail({ from: cursor.id, blockMs: 60_000 })[Symbol.asyncIterator]();
    const next = iterator.next().then(
      (r) => r,
      (e: unknown) => e,
    );
    await waitUntil("the tail is blocked in XREAD", async () =>
      String(await admin.client("LIST")).includes("cmd=xread"),
    );
    await log.append(100);
    const early = await next;
    await iterator.return?.();
    expect(early).toBeInstanceOf(GapError);
    expect(early).toMatchObject({ after: cursor.id, missed: undefined });

    // Resumed once the new log has entries.
    await log.append(101);
    const { entries, error } = await tailed(log, cursor.id, 1);
    expect(entries).toEqual([]);
    expect(error).toBeInstanceOf(GapError);
  });
});
