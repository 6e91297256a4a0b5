import { connect, type RedisClient } from "@coordis/core";
import { type HandlerErrorInfo, type OverflowInfo, PubSub } from "@coordis/pubsub";
import { EventRecorder, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

/** Lets every pending promise job and the unhandled-rejection check of this turn run (no timer involved). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("PubSub delivery and listeners (shared standalone server)", () => {
  let redis: RedisClient;
  /** Unrestricted: EVAL is not among the least-privilege user's commands. */
  let admin: RedisClient;
  const buses: PubSub[] = [];
  const bus = (options: ConstructorParameters<typeof PubSub>[1] = {}) => {
    const b = new PubSub(redis, { prefix, ...options });
    buses.push(b);
    return b;
  };
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisAdminRedisUrl"));
  });
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
    redis.disconnect();
    admin.disconnect();
  });

  it("a 'handler-error' or 'overflow' listener that throws or rejects leaves no unhandled rejection, the next listener and delivery go on", async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", record);
    try {
      const b = bus({ queueLimit: 1 });
      const errors = new EventRecorder<HandlerErrorInfo>();
      const overflows = new EventRecorder<OverflowInfo>();
      // A buggy synchronous listener first: the listeners after it must still hear of the event.
      b.on("handler-error", () => {
        throw new Error("handler-error listener bug");
      });
      b.on("overflow", () => {
        throw new Error("overflow listener bug");
      });
      // Natural listeners in an app: they log or reload something asynchronously, and that can fail.
      b.on("handler-error", async (info) => {
        errors.record(info);
        throw new Error("async handler-error listener bug");
      });
      b.on("overflow", async (info) => {
        overflows.record(info);
        throw new Error("async overflow listener bug");
      });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const got: number[] = [];
      await b.subscribe<number>("async-listeners", async (m) => {
        if (m === 1) {
          await gate;
          throw new Error("handler bug");
        }
        got.push(m);
      });
      await b.publish("async-listeners", 1); // runs, blocked on the gate
      await b.publish("async-listeners", 2); // queued (queueLimit 1)
      await b.publish("async-listeners", 3); // dropped
      await overflows.waitFor(() => true, { what: "an overflow" });
      release();
      await errors.waitFor((e) => e.stage === "handler", { what: "the handler error" });
      await waitUntil("message 2", () => got.includes(2));
      await b.publish("async-listeners", 4);
      await waitUntil("message 4 after the failing listeners", () => got.includes(4));
      await nextTurn();
      expect(unhandled).toEqual([]);
      expect(got).toEqual([2, 4]);
    } finally {
      process.off("unhandledRejection", record);
    }
  });

  it("a synchronous handler takes a burst larger than queueLimit arriving in one read without dropping anything", async () => {
    const b = bus({ queueLimit: 5 });
    const overflows = new EventRecorder<OverflowInfo>();
    b.on("overflow", overflows.record);
    const got: number[] = [];
    let handlerRunning = false;
    let overlapped = false;
    await b.subscribe<number>("burst", (m) => {
      overlapped ||= handlerRunning;
      handlerRunning = true;
      got.push(m);
      handlerRunning = false;
    });
    // One script publishes 200 messages: Redis writes them to the subscriber in one go, so they are parsed (and
    // dispatched) in one read. The handler is never busy, so nothing may be dropped "while it is busy".
    const channel = `${prefix}:ps:burst`;
    expect(await admin.eval("for i = 1, 200 do redis.call('publish', KEYS[1], i) end return 1", 1, channel)).toBe(1);
    await b.publish("burst", 0); // a marker after the burst: once it arrives, every burst message was dispatched
    await waitUntil("every burst message handled or dropped", () => got.length + b.stats().dropped === 201);
    expect(b.stats().dropped).toBe(0);
    expect(overflows.items).toEqual([]);
    expect(got).toEqual([...Array.from({ length: 200 }, (_, i) => i + 1), 0]);
    expect(overlapped).toBe(false);
  });

  it.each([1, 2])(
    "a synchronous handler that subscribes again while it handles a message (%i handler(s) on the channel) gets that message once",
    async (handlers) => {
      const b = bus();
      const others: number[] = [];
      for (let i = 1; i < handlers; i++) await b.subscribe<number>("resub", (m) => void others.push(m));
      const calls: number[] = [];
      const offs: Array<() => Promise<void>> = [];
      // Each call hands over to a new handler of the same channel, synchronously, and ends its own subscription.
      const register = (): void => {
        let done = false;
        const subscribed = b.subscribe<number>("resub", (m) => {
          if (done) return; // handed over already (its unsubscribe may not have taken effect yet)
          calls.push(m);
          if (calls.length > 100) return; // a guard: without the fix this loops without end
          done = true;
          register();
          void subscribed.then((off) => off());
        });
        void subscribed.then((off) => offs.push(off));
      };
      register();
      await waitUntil("the first handler is subscribed", () => offs.length === 1);
      await b.publish("resub", 1);
      await b.publish("resub", 2); // once handled, message 1 was dispatched to everyone it was for
      await waitUntil("message 2 handled", () => calls.includes(2));
      expect(calls).toEqual([1, 2]);
      expect(others).toEqual(handlers === 1 ? [] : [1, 2]);
    },
  );

  it("an async handler still gets one message at a time, in order, with the queue bounded by queueLimit", async () => {
    const b = bus({ queueLimit: 3 });
    const overflows = new EventRecorder<OverflowInfo>();
    b.on("overflow", overflows.record);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const got: number[] = [];
    let running = 0;
    let maxRunning = 0;
    await b.subscribe<number>("async-order", async (m) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await gate;
      got.push(m);
      running--;
    });
    const channel = `${prefix}:ps:async-order`;
    await admin.eval("for i = 1, 10 do redis.call('publish', KEYS[1], i) end return 1", 1, channel);
    // 1 runs, 2..4 wait, 5..10 are dropped.
    await overflows.waitFor((o) => o.dropped === 6, { what: "6 overflows" });
    expect(b.stats().queued).toBe(3);
    release();
    await waitUntil("the queue drained", () => got.length === 4);
    expect(got).toEqual([1, 2, 3, 4]);
    expect(maxRunning).toBe(1);
  });
});
