import { type CoordisObserver, combineObservers, connect, instrument, notifyEvent } from "@coordis/core";
import { startRedis, waitUntil } from "@coordis/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

/** One turn of the event loop: Node reports a rejection nobody handled before it ends. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("an async observer that rejects", () => {
  let unhandled: unknown[];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeEach(() => {
    unhandled = [];
    process.on("unhandledRejection", onUnhandled);
  });
  afterEach(() => {
    process.off("unhandledRejection", onUnhandled);
  });

  /** An observer that forwards reports to a sink that is down (an async logger, an HTTP exporter). */
  function failingObserver(calls: string[]): CoordisObserver {
    return {
      onOperation: async (e) => {
        calls.push(`operation ${e.op}`);
        throw new Error("metrics sink unreachable");
      },
      onEvent: async (e) => {
        calls.push(`event ${e.type}`);
        throw new Error("log sink unreachable");
      },
    };
  }

  it("is swallowed like one that throws: no unhandled rejection from operations or combined observers", async () => {
    const calls: string[] = [];
    const observer = failingObserver(calls);
    expect(await instrument(observer, { primitive: "test", op: "work" }, () => 42)).toBe(42);
    await expect(
      instrument(combineObservers(observer), { primitive: "test", op: "fail" }, () => Promise.reject(new Error("x"))),
    ).rejects.toThrow("x");
    notifyEvent(observer, { primitive: "test", type: "something" });
    await nextTurn();
    await nextTurn();
    expect(calls).toEqual(["operation work", "operation fail", "event something"]);
    expect(unhandled).toEqual([]);
  });

  it("is swallowed for the connection errors connect() reports to it", async () => {
    const server = await startRedis();
    const port = server.port;
    await server.stop();
    const calls: string[] = [];
    const redis = connect(`redis://127.0.0.1:${port}`, { observer: failingObserver(calls) });
    try {
      await waitUntil("a connection-error report", () => calls.includes("event connection-error"), 5_000);
      await nextTurn();
      await nextTurn();
      expect(unhandled).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});
