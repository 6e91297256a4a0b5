import { ScriptError } from "@coordis/core";
import { type Entry, EventLog } from "@coordis/eventlog";
import { testPrefix, withDeadline } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("eltailwrongtype");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

/** How long a tail may take to fail: a few of its 50 ms blocking reads. */
const FAILS_WITHIN_MS = 5_000;

/** What the tail's next step settles with: an entry, the end, or its error; bounded, so a tail that never settles fails. */
async function nextOf<T>(it: AsyncIterator<Entry<T>>): Promise<{ entry?: Entry<T>; done?: true; error?: unknown }> {
  try {
    const r = await withDeadline(it.next(), FAILS_WITHIN_MS, "the tail's next step to settle");
    return r.done === true ? { done: true } : { entry: r.value };
  } catch (error) {
    return { error };
  }
}

// A tail retries what may pass (Redis unreachable, a connection drop), but a read that Redis refuses because the log's
// stream key holds another type (someone SET it) fails the same way every time: the tail ends with that error, naming
// the key, instead of retrying forever as an iterator that neither yields nor throws.
describe("tail of a log whose stream key holds another type", () => {
  const clients = sharedClients();

  for (const from of ["end", "start", "1-0"] as const) {
    it(`throws ScriptError (WRONGTYPE) naming the key, from "${from}"`, async () => {
      const log = new EventLog<number>(clients.redis, name(`set-${from}`), { prefix });
      await clients.admin.set(log.keys.stream, "not a stream");
      const controller = new AbortController();
      const it = log.tail({ from, blockMs: 50, signal: controller.signal })[Symbol.asyncIterator]();
      try {
        const { error } = await nextOf(it);
        expect(error).toBeInstanceOf(ScriptError);
        expect((error as ScriptError).redisMessage).toMatch(/^WRONGTYPE/);
        expect((error as ScriptError).message).toContain(log.keys.stream);
        expect((error as ScriptError).message).toMatch(/must be a stream/);
      } finally {
        controller.abort();
      }
    });
  }

  it("throws it when the key is replaced while the tail runs (chained log)", async () => {
    const log = new EventLog<number>(clients.redis, name("replaced"), { prefix, chain: true });
    await log.append(1);
    const controller = new AbortController();
    const it = log.tail({ from: "start", blockMs: 50, signal: controller.signal })[Symbol.asyncIterator]();
    try {
      expect((await nextOf(it)).entry?.data).toBe(1);
      await clients.admin.del(log.keys.stream);
      await clients.admin.set(log.keys.stream, "not a stream");
      const { error } = await nextOf(it);
      expect(error).toBeInstanceOf(ScriptError);
      expect((error as ScriptError).redisMessage).toMatch(/^WRONGTYPE/);
      // Ended: a further step is done at once.
      expect(await nextOf(it)).toEqual({ done: true });
    } finally {
      controller.abort();
    }
  });
});
