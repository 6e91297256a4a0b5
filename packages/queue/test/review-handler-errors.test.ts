import { InvalidArgumentError } from "@coordis/core";
import { type Job, JobDeadError } from "@coordis/queue";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-errors");

/** A thrown value that has no string form: `String()` of it throws (no toString, no Symbol.toPrimitive). */
const formless = (): unknown => Object.create(null);

describe("what a handler throws, and bad input to a job's and a worker's methods", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("a handler rejecting with a value that has no string form fails its attempt, and the worker goes on", async () => {
    const name = "formless-async";
    const q = queue<string, string>(name);
    const failures: unknown[] = [];
    const onUnhandled = (reason: unknown) => failures.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      // One slot: a slot the failed job never gave back would hold the next job forever.
      worker<string, string>(
        name,
        async (job) => {
          if (job.data === "bad") throw formless();
          return job.data;
        },
        { concurrency: 1 },
      );
      const bad = await q.add("bad", { attempts: 1 });
      const good = await q.add("good");
      const fate = await q.result(bad.id, { timeoutMs: 10_000 }).catch((err: unknown) => err);
      expect(fate).toBeInstanceOf(JobDeadError);
      expect((await q.get(bad.id))?.error).toBe("an object without a string form");
      await expect(q.result(good.id, { timeoutMs: 10_000 })).resolves.toBe("good");
      expect(failures).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("a handler rejecting with a value that is not an Error records its string form, not an Error's name", async () => {
    const name = "string-thrown";
    const q = queue<string, string>(name);
    worker<string, string>(name, async () => {
      throw "quota exceeded";
    });
    const job = await q.add("x", { attempts: 1 });
    const fate = await q.result(job.id, { timeoutMs: 10_000 }).catch((err: unknown) => err);
    expect(fate).toBeInstanceOf(JobDeadError);
    expect((fate as JobDeadError).lastError).toBe("quota exceeded");
    expect((await q.get(job.id))?.error).toBe("quota exceeded");
  });

  it("a handler throwing synchronously a value that has no string form fails its attempt, and the worker goes on", async () => {
    const name = "formless-sync";
    const q = queue<string, string>(name);
    const failures: unknown[] = [];
    const onUnhandled = (reason: unknown) => failures.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      // Not an async function: the throw reaches the worker synchronously.
      const handler = ((job: Job<string>) => {
        if (job.data === "bad") throw formless();
        return Promise.resolve(job.data);
      }) as (job: Job<string>) => Promise<string>;
      worker<string, string>(name, handler, { concurrency: 2 });
      const bad = await q.add("bad", { attempts: 1 });
      const fate = await q.result(bad.id, { timeoutMs: 10_000 }).catch((err: unknown) => err);
      expect(fate).toBeInstanceOf(JobDeadError);
      // Added after the bad job ended: the worker still fetches.
      const good = await q.add("good");
      await expect(q.result(good.id, { timeoutMs: 10_000 })).resolves.toBe("good");
      expect(failures).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("an add whose codec throws a value that has no string form rejects with InvalidArgumentError naming the data", async () => {
    const codec = {
      encode: (): string => {
        throw formless();
      },
      decode: (text: string) => text,
    };
    const q = queue<string>("codec-formless", { codec });
    const single = await q.add("x").catch((err: unknown) => err);
    expect(single).toBeInstanceOf(InvalidArgumentError);
    expect((single as InvalidArgumentError).argument).toBe("data");
    const many = await q.addMany([{ data: "x" }]).catch((err: unknown) => err);
    expect(many).toBeInstanceOf(InvalidArgumentError);
    expect((many as InvalidArgumentError).argument).toBe("items[0].data");
    expect(await q.counts()).toMatchObject({ waiting: 0, delayed: 0 });
  });

  it("job.progress() rejects a value JSON cannot encode (BigInt, cycle) with InvalidArgumentError", async () => {
    const name = "progress-bad";
    const q = queue<string, string[]>(name);
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    worker<string, string[]>(name, async (job) => {
      const seen: string[] = [];
      for (const value of [10n, cyclic, undefined]) {
        try {
          await job.progress(value);
          seen.push("stored");
        } catch (err) {
          seen.push(err instanceof InvalidArgumentError ? err.argument : `other: ${String(err)}`);
        }
      }
      return seen;
    });
    const { id } = await q.add("x");
    expect(await q.result(id, { timeoutMs: 10_000 })).toEqual(["value", "value", "value"]);
  });

  it("worker.close() with bad options returns a rejected promise (no synchronous throw) and the worker still closes", async () => {
    const w = worker<string, string>("close-bad", async (job) => job.data);
    let result: Promise<void> | undefined;
    expect(() => {
      result = w.close({ timeoutMs: -1 });
    }).not.toThrow();
    await expect(result).rejects.toBeInstanceOf(InvalidArgumentError);
    await w.close({ timeoutMs: 100 });
  });
});
