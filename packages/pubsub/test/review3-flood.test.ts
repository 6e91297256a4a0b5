import { PubSub } from "@coordis/pubsub";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { afterAll, describe, expect, it } from "vitest";

const prefix = testPrefix("ps-r3");

/**
 * Adversarial delivery: a flood on one channel whose handlers throw, lag, and unsubscribe themselves or each other
 * while messages are queued; a channel left and subscribed again before Redis answered the UNSUBSCRIBE.
 */
describe("PubSub under a flood with misbehaving handlers (shared standalone server)", () => {
  // admin: unrestricted, for PUBSUB NUMSUB.
  const clients = sharedClients();
  const buses: PubSub[] = [];
  const bus = (options: ConstructorParameters<typeof PubSub>[1] = {}) => {
    const b = new PubSub(clients.redis, { prefix, ...options });
    buses.push(b);
    return b;
  };
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
  });

  it("a throwing, a lagging and a self-unsubscribing handler leave a plain handler every message, in order", async () => {
    const b = bus({ queueLimit: 20 });
    const total = 2000;
    const plain: number[] = [];
    const slow: number[] = [];
    let thrown = 0;
    let quitter = 0;
    const overflows: number[] = [];
    const errors: unknown[] = [];
    b.on("overflow", (o) => overflows.push(o.dropped));
    b.on("handler-error", (e) => errors.push(e.error.message));
    await b.subscribe<number>("flood", (n) => {
      plain.push(n);
    });
    await b.subscribe<number>("flood", (n) => {
      if (n % 3 === 0) {
        thrown++;
        throw new Error(`boom ${n}`);
      }
    });
    await b.subscribe<number>("flood", async (n) => {
      await new Promise((resolve) => setImmediate(resolve));
      slow.push(n);
    });
    const offQuitter = await b.subscribe<number>("flood", (n) => {
      quitter++;
      if (n === 49) void offQuitter();
    });
    const pubs: Promise<number>[] = [];
    for (let i = 0; i < total; i++) pubs.push(b.publish("flood", i));
    const receivers = await Promise.all(pubs);
    expect(receivers.every((r) => r === 1)).toBe(true);
    await waitUntil("every message handled by the plain handler", () => plain.length === total);
    await waitUntil("the slow handler's queue drained", () => b.stats().queued === 0);
    expect(plain).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(quitter).toBe(50);
    expect(thrown).toBe(Math.ceil(total / 3));
    expect(errors).toHaveLength(thrown);
    expect(b.stats().handlerErrors).toBe(thrown);
    // The slow handler sees an increasing subsequence; what it missed was counted and reported.
    for (let i = 1; i < slow.length; i++) expect(slow[i]).toBeGreaterThan(slow[i - 1] as number);
    expect(slow.length + b.stats().dropped).toBe(total);
    expect(overflows).toHaveLength(b.stats().dropped);
    expect(b.stats()).toMatchObject({ subscriptions: 3, channels: 1, queued: 0 });
  });

  it("a handler that unsubscribes a sibling drops the sibling's queued messages; the channel stays subscribed", async () => {
    const b = bus();
    const sibling: number[] = [];
    const killer: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const offSibling = await b.subscribe<number>("sib", async (n) => {
      sibling.push(n);
      await gate; // busy on the first message: the rest queue behind it
    });
    await b.subscribe<number>("sib", (n) => {
      killer.push(n);
      if (n === 10) void offSibling();
    });
    for (let i = 0; i < 20; i++) await b.publish("sib", i);
    await waitUntil("the killer saw all", () => killer.length === 20);
    release();
    await b.publish("sib", 20);
    await waitUntil("the killer saw the last", () => killer.length === 21);
    expect(sibling).toEqual([0]);
    expect(b.stats()).toMatchObject({ subscriptions: 1, channels: 1, queued: 0 });
    expect(await clients.admin.pubsub("NUMSUB", b.redisChannel("sib"))).toEqual([b.redisChannel("sib"), 1]);
  });

  it("a channel left and subscribed again before Redis answered the UNSUBSCRIBE keeps delivering to the new handler", async () => {
    const b = bus();
    const old: number[] = [];
    const fresh: number[] = [];
    const other: number[] = [];
    const offOld = await b.subscribe<number>("again", (n) => {
      old.push(n);
    });
    await b.publish("again", 0);
    await waitUntil("first message", () => old.length === 1);
    // Not awaited: the UNSUBSCRIBE (the connection's last channel, leaving subscriber mode) and the SUBSCRIBEs are in
    // flight together.
    const leaving = offOld();
    const [offFresh] = await Promise.all([
      b.subscribe<number>("again", (n) => {
        fresh.push(n);
      }),
      b.subscribe<number>("again-other", (n) => {
        other.push(n);
      }),
      leaving,
    ]);
    for (let i = 1; i <= 5; i++) {
      expect(await b.publish("again", i)).toBe(1);
      expect(await b.publish("again-other", i)).toBe(1);
    }
    await waitUntil("the new handlers got everything", () => fresh.length === 5 && other.length === 5);
    expect(old).toEqual([0]);
    expect(fresh).toEqual([1, 2, 3, 4, 5]);
    expect(other).toEqual([1, 2, 3, 4, 5]);
    await offFresh();
    expect(await clients.admin.pubsub("NUMSUB", b.redisChannel("again"))).toEqual([b.redisChannel("again"), 0]);
  });
  it("a message of exactly maxMessageBytes in multi-byte UTF-8 is delivered whole; one byte more is refused, nothing sent", async () => {
    const b = bus({ maxMessageBytes: 1001 });
    const got: string[] = [];
    await b.subscribe<string>("big", (m) => void got.push(m));
    const exact = `${"é".repeat(499)}a`; // JSON: 2 quotes + 998 + 1 = 1001 bytes
    expect(await b.publish("big", exact)).toBe(1);
    await expect(b.publish("big", `${exact}b`)).rejects.toThrow(/1002 bytes, more than maxMessageBytes 1001/);
    expect(await b.publish("big", "end")).toBe(1);
    await waitUntil("both delivered", () => got.length === 2);
    expect(got).toEqual([exact, "end"]);
  });
  it("close() called from inside a handler mid-flood: nothing more is delivered, queued messages are dropped, no rejection leaks", async () => {
    const b = new PubSub(clients.redis, { prefix });
    const seen: number[] = [];
    const slow: number[] = [];
    const leaked: unknown[] = [];
    const record = (reason: unknown) => void leaked.push(reason);
    process.on("unhandledRejection", record);
    try {
      let closed!: Promise<void>;
      await b.subscribe<number>("closing", (n) => {
        seen.push(n);
        if (n === 100) closed = b.close();
      });
      await b.subscribe<number>("closing", async (n) => {
        slow.push(n);
        await new Promise((resolve) => setImmediate(resolve));
      });
      const sender = new PubSub(clients.redis, { prefix });
      buses.push(sender);
      await Promise.all(Array.from({ length: 500 }, (_, i) => sender.publish("closing", i)));
      await waitUntil("the handler closed the PubSub", () => seen.includes(100));
      await closed;
      expect(seen).toEqual(Array.from({ length: 101 }, (_, i) => i));
      expect(slow.every((n) => n <= 100)).toBe(true);
      expect(b.stats()).toMatchObject({ subscriptions: 0, queued: 0 });
      await expect(b.publish("closing", 1)).rejects.toMatchObject({ code: "ERR_PUBSUB_CLOSED" });
      // A round trip on the sender after the flood: any leaked rejection of the closed PubSub has surfaced by now.
      expect(await sender.publish("closing", 0)).toBe(0);
      expect(leaked).toEqual([]);
    } finally {
      process.off("unhandledRejection", record);
    }
  });
});
