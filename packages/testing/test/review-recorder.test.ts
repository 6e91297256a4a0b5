import { EventEmitter } from "node:events";
import { EventRecorder, recordObserver } from "@coordis/testing";
import { describe, expect, it } from "vitest";

interface Item {
  kind?: { name: string };
}

describe("EventRecorder.waitFor with a predicate that throws", () => {
  it("rejects that wait, never throws into the emitter, and other waits still see the item", async () => {
    const emitter = new EventEmitter();
    const recorder = new EventRecorder<Item>();
    emitter.on("item", recorder.record);
    const after: Item[] = [];
    emitter.on("item", (item: Item) => after.push(item));
    // Written for items that have a kind; the first one has none.
    const careless = recorder.waitFor((i) => (i.kind as { name: string }).name === "x", { timeoutMs: 2_000 });
    const other = recorder.waitFor((i) => i.kind === undefined, { timeoutMs: 2_000 });
    expect(() => emitter.emit("item", {})).not.toThrow();
    await expect(careless).rejects.toThrow(TypeError);
    await expect(other).resolves.toEqual({});
    // The emitter's other listeners got the item: the recorder did not break the code that emitted it.
    expect(after).toEqual([{}]);
    expect(recorder.items).toEqual([{}]);
  });

  it("an item already recorded that makes the predicate throw rejects the wait (a promise, not a throw)", async () => {
    const rec = recordObserver();
    rec.onEvent({ primitive: "lock", type: "lease-lost" });
    let wait: Promise<unknown> | undefined;
    expect(() => {
      wait = rec.waitForEvent((e) => (e.attributes as Record<string, unknown>).kind === "mutex", { timeoutMs: 500 });
    }).not.toThrow();
    await expect(wait).rejects.toThrow(TypeError);
  });
});
