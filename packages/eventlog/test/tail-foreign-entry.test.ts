import { type Entry, EventLog, GapError } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("eltailforeign");
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
    for await (const e of log.tail({ from, blockMs: 50 })) {
      entries.push(e);
      if (entries.length === count) break;
    }
  } catch (error) {
    return { entries, error };
  }
  return { entries };
}

// A log without a chain checks nothing about its entries: one that something else added (a raw XADD, without a
// sequence number) is returned by read() and yielded by tail() alike. It is not a gap: nothing was skipped, and the
// sequence check goes on from the entry EventLog.append wrote before it.
describe("tail of a log without a chain, with an entry something else added", () => {
  const clients = sharedClients();

  it("yields it as read() returns it, without a GapError, also when resuming from it", async () => {
    const log = new EventLog<number>(clients.redis, name("foreign"), { prefix });
    await log.append(0);
    const foreign = (await clients.admin.xadd(log.keys.stream, "*", "d", "-1")) as string;
    await log.append(1);
    await log.append(2);
    const read = (await log.read()).entries.map((e) => e.data);
    expect(read).toEqual([0, -1, 1, 2]);

    const fromStart = await tailed(log, "start", 4);
    expect(fromStart.error).toBeUndefined();
    expect(fromStart.entries.map((e) => e.data)).toEqual(read);

    const fromForeign = await tailed(log, foreign, 2);
    expect(fromForeign.error).toBeUndefined();
    expect(fromForeign.entries.map((e) => e.data)).toEqual([1, 2]);
  });

  it("still reports an entry deleted after it, with the exact count missed", async () => {
    const log = new EventLog<number>(clients.redis, name("foreign-gap"), { prefix });
    const first = await log.append(0);
    await clients.admin.xadd(log.keys.stream, "*", "d", "-1");
    const deleted = await log.append(1);
    await log.append(2);
    await clients.admin.xdel(log.keys.stream, deleted.id);
    const { entries, error } = await tailed(log, first.id, 3);
    expect(entries.map((e) => e.data)).toEqual([-1]);
    expect(error).toBeInstanceOf(GapError);
    expect(error).toMatchObject({ missed: 1 });
  });
});
