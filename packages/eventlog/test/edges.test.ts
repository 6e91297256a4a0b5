import { connect, type RedisClient } from "@coordis/core";
import { type Entry, EventLog, GapError } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { compareIds } from "../src/entries.js";

const prefix = testPrefix("eledge");
const MAX = "18446744073709551615";

describe("cursor edges", () => {
  let redis: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("every pair of edge cursors reads the entries strictly between them, never a Redis error", async () => {
    const log = new EventLog<number>(redis, "cursors", { prefix });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await log.append(i)).id);
    const all = (await log.read()).entries;
    const [ms = "0", seq = "0"] = (ids[2] as string).split("-");
    const cursors = [
      "0",
      "0-0",
      "0-1",
      MAX,
      `${MAX}-${MAX}`,
      `${MAX}-0`,
      `0-${MAX}`,
      `1-${MAX}`,
      ids[0] as string,
      ids[2] as string,
      ids[4] as string,
      `${ms}-${BigInt(seq) + 1n}`,
      `${BigInt(ms) - 1n}-${MAX}`,
      ms,
    ];
    /** A cursor as a full id, for the model (`<ms>` means `<ms>-0`). */
    const full = (c: string) => (c.includes("-") ? c : `${c}-0`);
    const failures: string[] = [];
    for (const after of [undefined, ...cursors]) {
      for (const before of [undefined, ...cursors]) {
        const expected = all.filter(
          (e) =>
            (after === undefined || compareIds(e.id, full(after)) > 0) &&
            (before === undefined || compareIds(e.id, full(before)) < 0),
        );
        for (const reverse of [false, true]) {
          const options = { ...(after === undefined ? {} : { after }), ...(before === undefined ? {} : { before }) };
          try {
            const page = await log.read({ ...options, reverse });
            const want = (reverse ? [...expected].reverse() : expected).map((e) => e.id);
            if (JSON.stringify(page.entries.map((e) => e.id)) !== JSON.stringify(want)) {
              failures.push(`${JSON.stringify({ ...options, reverse })}: got ${page.entries.length} entries`);
            }
          } catch (err) {
            failures.push(`${JSON.stringify({ ...options, reverse })}: ${String(err)}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it("deadLetters and tail accept the largest id: nothing comes after it", async () => {
    const log = new EventLog<number>(redis, "max-cursor", { prefix });
    await log.append(1);
    expect(await log.deadLetters({ after: `${MAX}-${MAX}` })).toEqual([]);
    expect(await log.deadLetters({ after: MAX })).toEqual([]);
    const seen: Entry<number>[] = [];
    // Waiting is the behaviour under test: a tail after the largest id yields nothing and ends without an error.
    for await (const e of log.tail({ from: `${MAX}-${MAX}`, blockMs: 20, signal: AbortSignal.timeout(300) })) {
      seen.push(e);
    }
    expect(seen).toEqual([]);
  });
});

describe("a tail across a Redis restart that lost the log", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true }); // no persistence: a restart loses everything
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("reports the gap with missed unknown (undefined), never a negative count", async () => {
    const log = new EventLog<number>(redis, "lost", { prefix });
    for (let i = 0; i < 5; i++) await log.append(i);
    const seen: number[] = [];
    const iterator = log.tail({ from: "start", blockMs: 50 })[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) seen.push(((await iterator.next()).value as Entry<number>).data);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    // Handled at once: the tail may fail as soon as the first entry after the restart is appended.
    const next = iterator.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    await server.restart();
    await waitUntil("the log is empty after the restart", async () => (await log.length().catch(() => -1)) === 0);
    await log.append(100);
    await log.append(101);
    const err = await next;
    expect(err).toBeInstanceOf(GapError);
    expect((err as GapError).missed).toBeUndefined();
  });
});
