import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import {
  connect,
  coreScripts,
  defineScript,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  runScriptCoalesced,
  ScriptError,
} from "@coordis/core";
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

  it("settles each caller from its own reply: a slow command later in the pipeline does not hold it back", async () => {
    // A test-only script that keeps Redis busy for ~400 ms. It follows 12 calls with 4 KB values: Redis reads 16 KB
    // at a time and writes the replies of each read before the next, so at least the first 8 calls (~34 KB) are
    // answered before it reaches the slow one.
    const source = [
      "local t = redis.call('TIME')",
      "local start = t[1] * 1000000 + t[2]",
      "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1]) * 1000",
      "return 1",
    ].join("\n");
    const slow = defineScript<[], ["ms"], number>({
      name: "test/slow",
      keys: [],
      args: ["ms"],
      source,
      sha1: createHash("sha1").update(source).digest("hex"),
    });
    await redis.script("LOAD", source);
    const big = "x".repeat(4_096);
    const at: number[] = [];
    const stamp = (i: number) => () => {
      at[i] = performance.now();
    };
    const calls = Array.from({ length: 12 }, (_, i) => probe("early", `${big}${i}`).then(stamp(i)));
    const slowCall = runScriptCoalesced(redis, slow, [], [400]).then(stamp(12));
    const { writes } = await countWrites(redis, () => Promise.all([...calls, slowCall]));
    expect(writes).toBe(1); // one pipeline
    // Answered ~400 ms before the slow one; settling them when the whole pipeline settles would make it ~0.
    for (let i = 0; i < 8; i++) expect(at[i] as number).toBeLessThan((at[12] as number) - 100);
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

describe("runScriptCoalesced: per-client order across a NOSCRIPT recovery", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = server.client();
    admin = server.adminClient();
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(async () => {
    await server.stop();
  });

  /** The probe on one shared counter: its count is the order in which the calls ran on the server. */
  const keys = (tag: string) => [`${prefix}:{${tag}}:v`, `${prefix}:{${tag}}:c`] as const;
  type Probe = [value: string, count: number, nowMs: number];

  it("a runScript call made while a coalesced call waits on the recovery runs after it", async () => {
    await runScript(redis, coreScripts.probe, keys("warm"), ["w", 10_000]);
    await admin.script("FLUSH"); // not through `redis`: the cache is empty, the client does not know
    const [kv, kc] = keys("resume");
    // c0 meets NOSCRIPT. When its fallback EVAL is written, c1 (coalesced) then d1 (runScript) are called: both
    // wait for the recovery and resume together, in that order. The spy only observes the real client.
    const client = redis as unknown as { eval: (...args: unknown[]) => Promise<unknown> };
    const realEval = client.eval.bind(redis);
    let later: Promise<[Probe, Probe]> | undefined;
    client.eval = (...args: unknown[]) => {
      const sent = realEval(...args);
      later ??= Promise.all([
        runScriptCoalesced(redis, coreScripts.probe, [kv, kc], ["c1", 10_000]),
        runScript(redis, coreScripts.probe, [kv, kc], ["d1", 10_000]),
      ]);
      return sent;
    };
    try {
      const c0 = await runScriptCoalesced(redis, coreScripts.probe, [kv, kc], ["c0", 10_000]);
      expect(later).toBeDefined();
      const [c1, d1] = await (later as Promise<[Probe, Probe]>);
      expect([c0[1], c1[1], d1[1]]).toEqual([1, 2, 3]); // the order in which they ran
      expect(await redis.get(kv)).toBe("d1");
    } finally {
      delete (client as { eval?: unknown }).eval;
    }
  });

  it("calls in flight together that all meet NOSCRIPT are retried in call order, coalesced or not", async () => {
    await runScript(redis, coreScripts.probe, keys("warm"), ["w", 10_000]);
    await admin.script("FLUSH");
    const [kv, kc] = keys("inflight");
    const coalesced = (v: string) => runScriptCoalesced(redis, coreScripts.probe, [kv, kc], [v, 10_000]);
    const direct = (v: string) => runScript(redis, coreScripts.probe, [kv, kc], [v, 10_000]);
    // c0, c1 go out as one pipeline (flushed by d1), then d1, then c2 and d2 flushed by d2: all meet NOSCRIPT.
    const { result, sent } = await countCommands(server, () =>
      Promise.all([coalesced("c0"), coalesced("c1"), direct("d1"), coalesced("c2"), direct("d2")]),
    );
    expect(sent).toEqual({ evalsha: 5, eval: 5 });
    expect(result.map((r) => [r[0], r[1]])).toEqual([
      ["c0", 1],
      ["c1", 2],
      ["d1", 3],
      ["c2", 4],
      ["d2", 5],
    ]);
  });
});

describe("runScriptCoalesced when the connection drops mid-answer", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  /**
   * Sends 40 calls with 4 KB values (replies of 4 KB each: more than one socket read) and destroys the client's
   * socket right after ioredis parsed the first chunk of replies. Returns each call's outcome and how many ran.
   */
  async function cutMidAnswer(send: typeof runScript, tag: string) {
    const client = server.client({ commandTimeoutMs: 1_000 });
    const [kv, kc] = [`${prefix}:{${tag}}:v`, `${prefix}:{${tag}}:c`];
    await runScript(client, coreScripts.probe, [`${kv}w`, `${kc}w`], ["warm", 10_000]);
    const stream = (client as unknown as { stream: import("node:net").Socket }).stream;
    stream.once("data", () => stream.destroy());
    const big = "x".repeat(4_096);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => send(client, coreScripts.probe, [kv, kc], [`${big}${i}`, 60_000])),
    );
    await client.ping(); // reconnected
    const ran = Number(await client.get(kc));
    client.disconnect();
    return { outcomes, ran };
  }

  it("a pipeline answered in part: answered callers get their replies, every other one RedisUnavailableError", async () => {
    const { outcomes, ran } = await cutMidAnswer(runScriptCoalesced, "cut-pipe");
    const answered = outcomes.filter((o) => o.status === "fulfilled");
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
    expect(answered.length).toBeGreaterThan(0);
    expect(failed.length).toBeGreaterThan(0);
    // The first replies arrived; the rest was cut off. Whatever did not get its reply has an unknown outcome.
    expect(outcomes.slice(0, answered.length).every((o) => o.status === "fulfilled")).toBe(true);
    for (const f of failed) {
      expect(f.reason).toBeInstanceOf(RedisUnavailableError);
      // ioredis gives up the unanswered rest of the pipeline at once, with its AbortError.
      expect(((f.reason as Error).cause as Error).message).toMatch(/Command aborted/);
    }
    expect(ran).toBeGreaterThanOrEqual(answered.length);
  });

  it("plain script calls in flight (no pipeline) get RedisUnavailableError as well", async () => {
    const { outcomes, ran } = await cutMidAnswer(runScript, "cut-plain");
    const answered = outcomes.filter((o) => o.status === "fulfilled");
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
    expect(answered.length).toBeGreaterThan(0);
    expect(failed.length).toBeGreaterThan(0);
    for (const f of failed) {
      expect(f.reason).toBeInstanceOf(RedisUnavailableError);
      // Not re-sent (autoResendUnfulfilledCommands is off) and not aborted: each fails by its command timeout.
      expect(((f.reason as Error).cause as Error).message).toMatch(/Command timed out/);
    }
    expect(ran).toBeGreaterThanOrEqual(answered.length);
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
