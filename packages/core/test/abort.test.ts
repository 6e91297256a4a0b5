import { getEventListeners } from "node:events";
import { onAbort } from "@coordis/core";
import { describe, expect, it } from "vitest";

describe("onAbort", () => {
  it("puts one listener on a signal however many wait on it; each wait is called once, unless it stopped", () => {
    const controller = new AbortController();
    const calls: number[] = [];
    const stops = Array.from({ length: 30 }, (_, i) => onAbort(controller.signal, () => calls.push(i)));
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    for (let i = 0; i < 30; i += 2) stops[i]?.();
    controller.abort();
    controller.abort();
    expect(calls).toEqual(Array.from({ length: 15 }, (_, i) => 2 * i + 1));
  });

  it("the same function registered twice is two waits, each stopped by its own function", () => {
    const controller = new AbortController();
    let n = 0;
    const f = () => n++;
    const stop = onAbort(controller.signal, f);
    onAbort(controller.signal, f);
    stop();
    stop();
    controller.abort();
    expect(n).toBe(1);
  });

  it("a signal whose waits all stopped has no listener left; the next wait adds one again and is called", () => {
    const controller = new AbortController();
    const stops = [1, 2, 3].map(() =>
      onAbort(controller.signal, () => {
        throw new Error("stopped: must not run");
      }),
    );
    for (const stop of stops) stop();
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    let ran = false;
    onAbort(controller.signal, () => {
      ran = true;
    });
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    controller.abort();
    expect(ran).toBe(true);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});

describe("onAbort, when callbacks act on the other waits", () => {
  it("a callback that throws does not keep the other waits from being called; its error is thrown after them", () => {
    const controller = new AbortController();
    const calls: string[] = [];
    onAbort(controller.signal, () => calls.push("first"));
    onAbort(controller.signal, () => {
      calls.push("throws");
      throw new Error("boom");
    });
    onAbort(controller.signal, () => calls.push("last"));
    // The one listener of the signal, called as the signal calls it (its error is then reported as uncaught).
    const [listener] = getEventListeners(controller.signal, "abort");
    expect(() => (listener as (event: Event) => void)(new Event("abort"))).toThrow("boom");
    expect(calls).toEqual(["first", "throws", "last"]);
  });

  it("a wait stopped by the callback of an earlier one is not called", () => {
    const controller = new AbortController();
    const calls: string[] = [];
    let stopSecond = () => {};
    onAbort(controller.signal, () => {
      calls.push("first");
      stopSecond();
    });
    stopSecond = onAbort(controller.signal, () => calls.push("second"));
    onAbort(controller.signal, () => calls.push("third"));
    controller.abort();
    expect(calls).toEqual(["first", "third"]);
  });

  it("a wait made inside a callback of the abort is not called and leaves no listener on the signal", () => {
    const controller = new AbortController();
    let late = 0;
    onAbort(controller.signal, () => {
      onAbort(controller.signal, () => late++);
    });
    controller.abort();
    expect(late).toBe(0);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});
