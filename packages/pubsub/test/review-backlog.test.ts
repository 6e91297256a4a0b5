import { PubSub } from "@coordis/pubsub";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix();

/** Whether `value` is an array of queued messages ({ channel, data }). */
function isMessageQueue(value: unknown): boolean {
  if (!Array.isArray(value) || value.length === 0) return false;
  const first = value[0] as { channel?: unknown; data?: unknown } | undefined;
  return typeof first?.channel === "string" && Buffer.isBuffer(first.data);
}

describe("a subscription draining a long backlog (slow handler, large queueLimit)", () => {
  const clients = sharedClients();

  it("handles every message in order, taking each from the queue without moving what is left", async () => {
    const total = 20_000;
    const bus = new PubSub(clients.redis, { prefix, queueLimit: total });
    // Elements that Array#shift moved down, in arrays of queued messages, while the backlog drains: a queue that
    // moves its rest for every message costs total^2 / 2 (2e8 here), quadratic CPU on the event loop.
    let moved = 0;
    const shift = Array.prototype.shift;
    try {
      const seen: number[] = [];
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      await bus.subscribe<number>("backlog", async (n) => {
        if (seen.length === 0) await gate; // busy while the burst arrives: every other message waits in the queue
        seen.push(n);
      });
      await clients.admin.eval(
        "for i = 1, tonumber(ARGV[1]) do redis.call('PUBLISH', KEYS[1], tostring(i)) end return 1",
        1,
        bus.redisChannel("backlog"),
        total,
      );
      await waitUntil("the burst queued", () => bus.stats().queued === total - 1);
      Array.prototype.shift = function (this: unknown[]) {
        if (isMessageQueue(this)) moved += this.length - 1;
        return shift.call(this);
      };
      release();
      await waitUntil("the backlog drained", () => seen.length === total, 30_000);
      Array.prototype.shift = shift;
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(bus.stats()).toMatchObject({ queued: 0, dropped: 0 });
      expect(moved).toBeLessThan(10 * total);
    } finally {
      Array.prototype.shift = shift;
      await bus.close();
    }
  });
});
