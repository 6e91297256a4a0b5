import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-job-destructure");

describe("a handler that takes its job apart", () => {
  const { queue, worker } = onSharedServer(prefix);

  it("can call progress() taken from the job (async ({ data, progress, signal }) => ...)", async () => {
    const name = "destructured";
    const q = queue<number, string>(name);
    worker<number, string>(name, async ({ id, data, fence, progress, signal }) => {
      const stored = await progress({ done: data });
      return `${id.length > 0} ${fence > 0} ${stored} ${signal.aborted}`;
    });
    const { id } = await q.add(7, { attempts: 1 });
    await expect(q.result(id, { timeoutMs: 10_000 })).resolves.toBe("true true true false");
    expect(await q.get(id)).toMatchObject({ state: "completed", progress: { done: 7 } });
  });
});
