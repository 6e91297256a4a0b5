import { connect, coreScripts, type RedisClient, runScript, runScriptCoalesced, ScriptError } from "@coordis/core";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

/**
 * Counts the socket writes of a real client while `fn` runs. The spy only observes: every byte still goes to the
 * real server.
 */
async function countWrites<T>(client: RedisClient, fn: () => Promise<T>): Promise<{ result: T; writes: number }> {
  const socket = (client as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
  const write = socket.write;
  let writes = 0;
  socket.write = function (this: unknown, ...args: unknown[]) {
    writes++;
    return write.apply(this, args);
  };
  try {
    return { result: await fn(), writes };
  } finally {
    socket.write = write;
  }
}

describe("runScriptCoalesced on a standalone server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = server.client();
    await redis.ping();
    await runScript(redis, coreScripts.probe, [`${prefix}:{w}:v`, `${prefix}:{w}:c`], ["warm", 10_000]);
  });
  afterAll(async () => {
    await server.stop();
  });

  const probe = (tag: string, value: string) =>
    runScriptCoalesced(redis, coreScripts.probe, [`${prefix}:{${tag}}:v`, `${prefix}:{${tag}}:c`], [value, 10_000]);

  it("writes the calls of one event-loop turn as one pipeline; each caller gets its own reply or error", async () => {
    await redis.hset(`${prefix}:{bad}:c`, "f", "1"); // INCR on a hash: WRONGTYPE for that call only
    const { result, writes } = await countWrites(redis, () =>
      Promise.allSettled([probe("p", "a"), probe("p", "b"), probe("bad", "x"), probe("q", "c")]),
    );
    expect(writes).toBe(1);
    const [a, b, bad, c] = result;
    expect(a).toEqual({ status: "fulfilled", value: ["a", 1, expect.any(Number)] });
    expect(b).toEqual({ status: "fulfilled", value: ["b", 2, expect.any(Number)] });
    expect(c).toEqual({ status: "fulfilled", value: ["c", 1, expect.any(Number)] });
    expect(bad?.status).toBe("rejected");
    const err = (bad as PromiseRejectedResult).reason as ScriptError;
    expect(err).toBeInstanceOf(ScriptError);
    expect(err.script).toBe("core/probe");
    expect(err.message).toMatch(/WRONGTYPE/);
  });

  it("sends a call alone in its turn as a plain EVALSHA, one round trip", async () => {
    const { result, roundTrips, sent } = await countCommands(server, () => countWrites(redis, () => probe("one", "v")));
    expect(roundTrips).toBe(1);
    expect(sent).toEqual({ evalsha: 1 });
    expect(result.writes).toBe(1);
    expect(result.result[0]).toBe("v");
  });

  it("recovers from NOSCRIPT inside a pipeline: every call falls back to EVAL once, in call order", async () => {
    await redis.script("FLUSH");
    const values = Array.from({ length: 10 }, (_, i) => `v${i}`);
    const { result, sent } = await countCommands(server, () =>
      countWrites(redis, () => Promise.all(values.map((v) => probe("ns", v)))),
    );
    expect(sent).toEqual({ evalsha: 10, eval: 10 });
    expect(result.writes).toBe(2); // the EVALSHA pipeline, then the EVAL pipeline
    expect(result.result.map((r) => r[1])).toEqual(values.map((_, i) => i + 1));
    expect(await redis.get(`${prefix}:{ns}:v`)).toBe("v9");
    const next = await countCommands(server, () => probe("ns", "after"));
    expect(next.sent).toEqual({ evalsha: 1 });
  });

  it("keeps per-client order: a runScript call made after queued calls is written after them", async () => {
    const tag = `${prefix}:{order}`;
    const direct = () => runScript(redis, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["direct", 10_000]);
    const queued = (v: string) => runScriptCoalesced(redis, coreScripts.probe, [`${tag}:v`, `${tag}:c`], [v, 10_000]);
    const { result, writes } = await countWrites(redis, () =>
      Promise.all([queued("a"), queued("b"), direct(), queued("c")]),
    );
    // a and b are flushed by the direct call, which follows them; c waits for the end of the turn.
    expect(writes).toBe(3);
    expect(result.map((r) => [r[0], r[1]])).toEqual([
      ["a", 1],
      ["b", 2],
      ["direct", 3],
      ["c", 4],
    ]);
  });
});

describe("runScriptCoalesced on the shared Redis Cluster", () => {
  let redis: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisClusterUrl"));
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("runs each call as runScript does (no pipeline across slots), each with its own reply", async () => {
    const tags = Array.from({ length: 20 }, (_, i) => `${prefix}:{cl${i}}`);
    const replies = await Promise.all(
      tags.map((t) => runScriptCoalesced(redis, coreScripts.probe, [`${t}:v`, `${t}:c`], [t, 10_000])),
    );
    expect(replies.map((r) => [r[0], r[1]])).toEqual(tags.map((t) => [t, 1]));
  });
});
