import { InvalidArgumentError } from "@coordis/core";
import { JobDeadError, MAX_PROGRESS_BYTES } from "@coordis/queue";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-payload-encoding");

/** What a call rejected with: the InvalidArgumentError's argument and message, or another error's text. */
async function refusal(call: Promise<unknown>): Promise<{ argument: string; message: string } | string> {
  try {
    await call;
    return "accepted";
  } catch (err) {
    if (err instanceof InvalidArgumentError) return { argument: err.argument, message: err.message };
    return `other: ${String(err)}`;
  }
}

describe("the default JSON codec of job data", () => {
  const { queue } = onSharedServer(prefix);

  it("refuses, with InvalidArgumentError naming data and where in it, what JSON would change or cannot encode; nothing is sent", async () => {
    const q = queue<unknown>("refused");
    const cases: [unknown, string][] = [
      [{ m: new Map([["a", 1]]) }, "value.m is a Map"],
      [new Set([1]), "value is a Set"],
      [10n, "value is a BigInt"],
      [{ deep: [{ n: 1n }] }, "value.deep[0].n is a BigInt"],
      [() => 1, "value is a function"],
      [Symbol("s"), "value is a symbol"],
      [{ ratio: Number.NaN }, "value.ratio is NaN"],
      [[1, undefined], "value[1] is undefined"],
      [{ at: new Date(Number.NaN) }, "value.at is an invalid Date"],
      [{ err: new Error("x") }, "value.err is an Error"],
    ];
    for (const [data, where] of cases) {
      const got = await refusal(q.add(data));
      expect(got, where).toMatchObject({ argument: "data" });
      expect((got as { message: string }).message, where).toContain(where);
    }
    expect(await refusal(q.addMany([{ data: 1 }, { data: { m: new Map() } }]))).toMatchObject({
      argument: "items[1].data",
    });
    expect(await q.counts()).toMatchObject({ waiting: 0, delayed: 0 });
  });

  it("stores what JSON keeps: null, empty objects and arrays, Dates (as ISO text), absent properties, a class's fields", async () => {
    const q = queue<unknown>("accepted");
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    const data = {
      a: null,
      b: {},
      c: [],
      d: new Date(0),
      e: undefined,
      f: Object.create(null),
      p: new Point(1, 2),
      s: "{} null",
    };
    const { id } = await q.add(data);
    expect((await q.get(id))?.data).toEqual({
      a: null,
      b: {},
      c: [],
      d: "1970-01-01T00:00:00.000Z",
      f: {},
      p: { x: 1, y: 2 },
      s: "{} null",
    });
    const { id: nothing } = await q.add(undefined);
    expect((await q.get(nothing))?.data).toBeUndefined();
    const { id: bare } = await q.add(null);
    expect((await q.get(bare))?.data).toBeNull();
  });
});

describe("results and progress", () => {
  const { queue, worker } = onSharedServer(prefix);

  it("job.progress() counts its 64 KiB limit in UTF-8 bytes of the JSON text, not in characters", async () => {
    const name = "progress-bytes";
    const q = queue<string, string[]>(name);
    // "é" is 2 bytes in UTF-8, one UTF-16 unit; "😀" is 4 bytes, two units. The quotes add 2 bytes.
    const fits = "é".repeat((MAX_PROGRESS_BYTES - 2) / 2);
    const values = [fits, `${fits}é`, "😀".repeat(20_000)];
    worker<string, string[]>(name, async (job) => {
      const seen: string[] = [];
      for (const value of values) {
        const got = await refusal(job.progress(value));
        seen.push(typeof got === "string" ? got : `${got.argument}: ${got.message}`);
      }
      return seen;
    });
    const { id } = await q.add("x");
    const seen = await q.result(id, { timeoutMs: 10_000 });
    expect(MAX_PROGRESS_BYTES).toBe(65_536);
    expect(seen[0]).toBe("accepted");
    for (const refused of seen.slice(1)) {
      expect(refused).toMatch(/^value: .*at most 65536 bytes .*UTF-8/);
    }
    expect((await q.get(id))?.progress).toBe(fits);
  });

  it("a result JSON cannot encode makes the job dead with an InvalidArgumentError naming result; a NaN in a result is stored as null", async () => {
    const name = "result-encoding";
    const q = queue<string, unknown>(name);
    worker<string, unknown>(name, async (job) => (job.data === "bigint" ? 10n : { avg: Number.NaN }));
    const dead = await q.add("bigint", { attempts: 3 });
    const fate = await q.result(dead.id, { timeoutMs: 10_000 }).catch((err: unknown) => err);
    expect(fate).toBeInstanceOf(JobDeadError);
    expect((fate as JobDeadError).attempts).toBe(1);
    expect((fate as JobDeadError).lastError).toMatch(/^InvalidArgumentError: .*"result".*BigInt/);
    const lenient = await q.add("nan");
    await expect(q.result(lenient.id, { timeoutMs: 10_000 })).resolves.toEqual({ avg: null });
  });
});
