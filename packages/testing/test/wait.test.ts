import { EventEmitter } from "node:events";
import { InvalidArgumentError } from "@coordis/core";
import { EventRecorder, eventually, recordObserver, tryWaitUntil, WaitTimeoutError, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";

describe("waitUntil", () => {
  it("resolves once the check holds, with the time it took", async () => {
    let calls = 0;
    const ms = await waitUntil("the third call", () => ++calls === 3, { intervalMs: 5 });
    expect(calls).toBe(3);
    expect(ms).toBeGreaterThanOrEqual(0);
  });

  it("awaits async checks and costs no wait when the condition already holds", async () => {
    let calls = 0;
    await waitUntil("an async check", async () => {
      calls++;
      return true;
    });
    expect(calls).toBe(1);
  });

  it("fails after the timeout with a message naming what was awaited", async () => {
    const err = await waitUntil("the moon", () => false, 50).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect(err).toMatchObject({
      code: "ERR_WAIT_TIMEOUT",
      what: "the moon",
      timeoutMs: 50,
      message: "timed out after 50 ms waiting for the moon",
    });
  });

  it("fails at once when the check throws, unless errors are ignored (then the last one is named)", async () => {
    let calls = 0;
    const boom = () => {
      calls++;
      throw new Error(`boom ${calls}`);
    };
    await expect(waitUntil("x", boom, 1_000)).rejects.toThrow("boom 1");
    expect(calls).toBe(1);
    const err = await waitUntil("y", boom, { timeoutMs: 30, intervalMs: 5, ignoreErrors: true }).catch((e) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect(calls).toBeGreaterThan(2);
    expect((err as Error).message).toBe(`timed out after 30 ms waiting for y: Error: boom ${calls}`);
    expect((err as Error).cause).toBeInstanceOf(Error);
  });

  it("rejects a bad timeout or interval as an InvalidArgumentError", async () => {
    await expect(waitUntil("x", () => true, -1)).rejects.toMatchObject({ argument: "timeoutMs" });
    await expect(waitUntil("x", () => true, { intervalMs: Number.NaN })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe("tryWaitUntil", () => {
  it("resolves true when the check holds and false when time runs out", async () => {
    let n = 0;
    expect(await tryWaitUntil(() => ++n > 2, 1_000)).toBe(true);
    expect(await tryWaitUntil(() => false, 20)).toBe(false);
  });
});

describe("eventually", () => {
  it("resolves with the first value that is neither undefined nor null", async () => {
    const answers = [undefined, null, 0];
    expect(await eventually("a value", () => answers.shift(), { intervalMs: 1 })).toBe(0);
  });

  it("times out naming what it waited for", async () => {
    await expect(eventually("a lease", async () => null, 30)).rejects.toThrow(
      "timed out after 30 ms waiting for a lease",
    );
  });
});

describe("EventRecorder", () => {
  it("records emitted items in order and resolves waitFor the moment a match arrives", async () => {
    const emitter = new EventEmitter();
    const rec = new EventRecorder<number>();
    emitter.on("n", rec.record);
    emitter.emit("n", 1);
    const pending = rec.waitFor((n) => n > 1, { what: "a number above 1" });
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await Promise.resolve();
    expect(settled).toBe(false);
    emitter.emit("n", 2);
    emitter.emit("n", 3);
    expect(await pending).toBe(2);
    expect(rec.items).toEqual([1, 2, 3]);
    expect(await rec.waitFor((n) => n === 1)).toBe(1);
    const next = rec.waitFor((n) => n > 1, { from: rec.items.length });
    emitter.emit("n", 4);
    expect(await next).toBe(4);
  });

  it("fails after its timeout naming what it waited for; clear() forgets", async () => {
    const rec = new EventRecorder<string>();
    rec.record("a");
    await expect(rec.waitFor((s) => s === "b", { what: "b", timeoutMs: 20 })).rejects.toThrow(
      new WaitTimeoutError("b", 20),
    );
    rec.clear();
    expect(rec.items).toEqual([]);
  });
});

describe("recordObserver", () => {
  it("records operation and event reports and waits for them", async () => {
    const rec = recordObserver();
    const later = rec.waitForEvent((e) => e.type === "gap");
    rec.onOperation({ primitive: "cache", op: "get", outcome: "hit", durationMs: 1 });
    rec.onEvent({ primitive: "cache", type: "gap" });
    expect(await later).toMatchObject({ type: "gap" });
    expect(await rec.waitForOperation((o) => o.outcome === "hit")).toMatchObject({ op: "get" });
    expect(rec.ops).toHaveLength(1);
    expect(rec.events).toHaveLength(1);
    await expect(rec.waitForOperation((o) => o.outcome === "miss", { timeoutMs: 20 })).rejects.toThrow(
      "timed out after 20 ms waiting for an operation report",
    );
    rec.clear();
    expect([rec.ops.length, rec.events.length]).toEqual([0, 0]);
  });
});
