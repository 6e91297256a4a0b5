import { type Codec, JobDeadError } from "@coordis/queue";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-undecodable-dead-letter");

/**
 * A codec that checks what it decodes (as a schema does): data written before a change of format (version 1) is
 * refused by the version 2 workers and Queue, so such jobs die at their first attempt, without a retry.
 */
const v2: Codec<{ version: number; to: string }> = {
  encode: (value) => JSON.stringify(value),
  decode: (text) => {
    const value = JSON.parse(text) as { version: number; to: string };
    if (value.version !== 2) throw new Error(`unsupported format version ${value.version}`);
    return value;
  },
};

describe("a dead job whose data the codec cannot decode", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("is listed by deadLetters() with the others, result() rejects with JobDeadError, get() reads its state", async () => {
    const name = "format-change";
    const q = queue<{ version: number; to: string }, string>(name, { codec: v2 });
    // A job of the old format (written by a producer of the previous deploy), and one that fails in its handler.
    await q.add({ version: 1, to: "old" }, { id: "old" });
    await q.add({ version: 2, to: "new" }, { id: "failing", attempts: 1 });
    worker<{ version: number; to: string }, string>(
      name,
      async (job) => {
        throw new Error(`cannot send to ${job.data.to}`);
      },
      { codec: v2 },
    );
    const dead = await q.result("old", { timeoutMs: 10_000 }).catch((err: unknown) => err);
    expect(dead).toBeInstanceOf(JobDeadError);
    expect((dead as JobDeadError).lastError).toContain("unsupported format version 1");
    await expect(q.result("failing", { timeoutMs: 10_000 })).rejects.toBeInstanceOf(JobDeadError);

    const info = await q.get("old");
    expect(info).toMatchObject({ id: "old", state: "dead", attempts: 1 });
    // The data is missing, and dataError says why; the object serializes as any other.
    expect(info?.data).toBeUndefined();
    expect(JSON.parse(JSON.stringify(info))).toMatchObject({ id: "old", state: "dead" });
    expect(info?.dataError).toMatchObject({
      code: "ERR_QUEUE_DECODE",
      message: expect.stringMatching(/unsupported format version 1/),
    });

    // One undecodable job hides none of the others, and can be retried from the page.
    const { jobs } = await q.deadLetters();
    expect(jobs.map((j) => j.id).sort()).toEqual(["failing", "old"]);
    const old = jobs.find((j) => j.id === "old");
    expect(old).toMatchObject({ id: "old", attempts: 1 });
    expect(old?.error).toContain("unsupported format version 1");
    expect(old?.data).toBeUndefined();
    expect(old?.dataError?.message).toMatch(/unsupported format version 1/);
    expect(jobs.find((j) => j.id === "failing")?.data).toEqual({ version: 2, to: "new" });
    expect(await q.retryDead("old")).toBe(true);
  });

  it("a completed job whose result the Queue's resultCodec cannot decode: get() reads its state, result() rejects with ERR_QUEUE_DECODE", async () => {
    const name = "result-format";
    const strict: Codec<string> = {
      encode: (value) => value,
      decode: (text) => {
        if (!text.startsWith("v2:")) throw new Error(`unsupported result ${text}`);
        return text.slice(3);
      },
    };
    const q = queue<string, string>(name, { resultCodec: strict });
    // Written by a worker of the previous format.
    worker<string, string>(name, async (job) => `v1:${job.data}`, {
      resultCodec: { encode: (v: string) => v, decode: (t: string) => t },
    });
    await q.add("x", { id: "done" });
    const err = await q.result("done", { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_QUEUE_DECODE", message: expect.stringMatching(/unsupported result v1:x/) });
    const info = await q.get("done");
    expect(info).toMatchObject({ id: "done", state: "completed", data: "x", attempts: 1 });
    expect(info?.result).toBeUndefined();
    expect(info?.resultError).toMatchObject({ code: "ERR_QUEUE_DECODE", message: expect.stringMatching(/v1:x/) });
  });
});
