import {
  connect,
  DEADLINE_MARGIN_MS,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  runScriptDynamic,
  type ScriptDef,
  ScriptError,
} from "@coordis/core";
import {
  eventually,
  mulberry32,
  type RedisServer,
  randomSeed,
  startRedis,
  testPrefix,
  withDeadline,
} from "@coordis/testing";
import fc from "fast-check";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { counter, uniqueScript } from "./fixtures/test-scripts.js";

const prefix = testPrefix("order-faults");

/** A script without keys, fresh as well. */
function keyless(label: string): ScriptDef<readonly [], readonly ["n"], number> {
  return uniqueScript<readonly [], readonly ["n"], number>(label, [], ["n"], "return tonumber(ARGV[1])");
}

/** Settles every promise, with the ms from `started` to each settling. */
function settleTimed<T>(
  promises: Promise<T>[],
  started: number,
): Promise<{ ms: number; result: PromiseSettledResult<T> }[]> {
  return Promise.all(
    promises.map((p) =>
      p.then(
        (value) => ({ ms: Date.now() - started, result: { status: "fulfilled", value } as const }),
        (reason: unknown) => ({ ms: Date.now() - started, result: { status: "rejected", reason } as const }),
      ),
    ),
  );
}

describe("calls held back behind a script's first call on a server that does not answer", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    server.resume();
    await server.stop();
  });

  it("every call fails by its own command timeout, not one timeout per first call queued ahead of it", async () => {
    const timeoutMs = 300;
    const redis = server.client({ commandTimeoutMs: timeoutMs });
    await redis.ping();
    const key = `${prefix}:{paused}`;
    // Each call is the first of a script on this client: none is seen to run while the server sleeps, so each is
    // a first call again and would go out alone after the one before it has timed out.
    const scripts = Array.from({ length: 12 }, (_, i) => counter(`paused-${i % 2}`));
    server.pause();
    let settled: { ms: number; result: PromiseSettledResult<number> }[];
    try {
      const started = Date.now();
      settled = await settleTimed(
        scripts.map((s) => runScript(redis, s, [key], [])),
        started,
      );
    } finally {
      server.resume();
    }
    for (const { ms, result } of settled) {
      expect(result.status).toBe("rejected");
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(RedisUnavailableError);
      // The README: a Coordis operation against a dead server fails within the command timeout (the slack is for
      // a loaded machine; twelve timeouts in a row would be 3600 ms).
      expect(ms).toBeLessThan(timeoutMs + DEADLINE_MARGIN_MS + 1_000);
    }
    // Nothing is left waiting: the next calls run, in order, after whatever the timed-out ones did.
    const base = Number(await redis.get(key));
    const again = [counter("after-0"), counter("after-1")];
    expect(await Promise.all(again.map((s) => runScript(redis, s, [key], [])))).toEqual([base + 1, base + 2]);
  });

  it("a call that waited and is then sent still settles by its deadline counted from the call", async () => {
    const timeoutMs = 1_000;
    const redis = server.client({ commandTimeoutMs: timeoutMs });
    const warm = counter("late-warm");
    const key = `${prefix}:{late}`;
    await runScript(redis, warm, [key], []);
    const cold = counter("late-cold");
    server.pause();
    let settled: { ms: number; result: PromiseSettledResult<number> }[];
    try {
      const started = Date.now();
      // cold goes out alone and times out after 1 s; warm waited for it and must not get 1 s more.
      settled = await settleTimed([runScript(redis, cold, [key], []), runScript(redis, warm, [key], [])], started);
    } finally {
      server.resume();
    }
    for (const { ms, result } of settled) {
      expect(result.status).toBe("rejected");
      expect(ms).toBeLessThan(timeoutMs + DEADLINE_MARGIN_MS + 400);
    }
  });
});

describe("a call that cannot be sent after it waited does not hold the calls behind it (shared Cluster)", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisClusterUrl"));
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("a keyless call with a number argument, queued between a first call and a later call", async () => {
    const warm = counter("keyless-warm");
    const key = `${prefix}:{keyless}`;
    await runScript(redis, warm, [key], []);
    const cold = counter("keyless-cold");
    const none = keyless("keyless");
    const first = runScript(redis, cold, [key], []);
    const middle = runScriptDynamic(redis, none, [], [7]).then(
      (n) => n,
      (err: unknown) => err,
    );
    const last = runScript(redis, warm, [key], []);
    expect(await first).toBe(2);
    // Before: the keyless call threw (its first argument taken for a key) after it was let go, and nothing let the
    // next call go, ever.
    expect(await withDeadline(last, 5_000, "the call behind the keyless call to settle")).toBe(3);
    expect(await withDeadline(middle, 5_000, "the keyless call to settle")).toBe(7);
  });
});

describe("script calls keep issue order after the client reconnects to a restarted server", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a script another client loaded again does not overtake one the restarted server lost", async () => {
    const redis = server.client({ commandTimeoutMs: 2_000 });
    const admin = server.adminClient();
    const lost = counter("restart-lost");
    const reloaded = counter("restart-reloaded");
    const key = `${prefix}:{restart}`;
    // Both seen to run on this client (loaded first: a NOSCRIPT would make every script count as unseen).
    await admin.script("LOAD", lost.source);
    await admin.script("LOAD", reloaded.source);
    expect(await Promise.all([runScript(redis, lost, [key], []), runScript(redis, reloaded, [key], [])])).toEqual([
      1, 2,
    ]);
    await server.restart();
    await eventually("both clients to be connected again", () => Promise.all([redis.ping(), admin.ping()]), {
      timeoutMs: 10_000,
      intervalMs: 50,
      ignoreErrors: true,
    });
    // Another process runs `reloaded` on the new server; `lost` is in no cache.
    await admin.script("LOAD", reloaded.source);
    // Made after the restart, so not calls in flight when the cache was lost: they must run in call order.
    expect(
      await Promise.all([
        runScript(redis, lost, [key], []),
        runScript(redis, reloaded, [key], []),
        runScript(redis, lost, [key], []),
      ]),
    ).toEqual([1, 2, 3]);
  });
});

/** Appends ARGV[1] (the call's index) to a list and returns the list's length, or, when ARGV[2] is "1", fails with
 * an error reply after the append: the list is the order in which all calls ran, failed ones included. */
function appender(label: string): ScriptDef<readonly ["log"], readonly ["index", "fail"], number> {
  return uniqueScript<readonly ["log"], readonly ["index", "fail"], number>(
    label,
    ["log"],
    ["index", "fail"],
    "redis.call('RPUSH', KEYS[1], ARGV[1])\n" +
      "if ARGV[2] == '1' then return redis.error_reply('ERR asked to fail') end\nreturn redis.call('LLEN', KEYS[1])",
  );
}

describe("bursts over five scripts in random cached and seen states run in call order (server of its own)", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = server.client({ commandTimeoutMs: 10_000 });
    admin = server.adminClient();
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(async () => {
    await server.stop();
  });

  /**
   * Per script: seen to run through this client, and in the server's cache when the burst starts. A script the client
   * has seen but the server lost (stale) only comes with every script out of the cache: the README leaves out calls
   * made before the client meets a NOSCRIPT when another client loaded some of their scripts again.
   */
  const states = fc
    .tuple(
      fc.boolean(),
      fc.array(fc.record({ seen: fc.boolean(), cached: fc.boolean() }), { minLength: 5, maxLength: 5 }),
    )
    .map(([stale, all]) =>
      all.map((st) => (stale ? { ...st, cached: false } : { ...st, cached: st.cached || st.seen })),
    );
  const call = fc.record({
    script: fc.nat(4),
    fail: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, fc.constant(true)),
  });

  it("every call runs in issue order, also calls that fail and with SCRIPT FLUSH from another client mid-burst", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        states,
        fc.array(call, { minLength: 100, maxLength: 500, size: "max" }),
        fc.option(fc.nat(499), { nil: undefined }),
        async (initial, calls, flushAt) => {
          run++;
          const scripts = initial.map((_, i) => appender(`burst-${run}-${i}`));
          // Seen: run once through this client (loaded first, so no NOSCRIPT resets what the client has seen).
          for (const [i, st] of initial.entries()) {
            if (!st.seen) continue;
            const s = scripts[i] as (typeof scripts)[number];
            await admin.script("LOAD", s.source);
            await runScript(redis, s, [`${prefix}:{burst-${run}}:warm`], [0, 0]);
          }
          // Not cached: gone from the server (a flush), though this client may have seen it run.
          await admin.script("FLUSH");
          for (const [i, st] of initial.entries())
            if (st.cached) await admin.script("LOAD", scripts[i]?.source as string);
          const log = `${prefix}:{burst-${run}}:log`;
          const pending: Promise<number | Error>[] = [];
          let flush: Promise<unknown> = Promise.resolve();
          for (const [i, c] of calls.entries()) {
            if (i === flushAt) flush = admin.script("FLUSH");
            const s = scripts[c.script] as (typeof scripts)[number];
            pending.push(
              runScript(redis, s, [log], [i, c.fail ? 1 : 0]).then(
                (n) => n,
                (err: Error) => err,
              ),
            );
          }
          const replies = await withDeadline(Promise.all(pending), 20_000, "the burst to settle");
          await flush;
          expect(await admin.lrange(log, 0, -1)).toEqual(calls.map((_, i) => String(i)));
          for (const [i, c] of calls.entries()) {
            if (c.fail) expect(replies[i]).toBeInstanceOf(ScriptError);
            else expect(replies[i]).toBe(i + 1);
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe("a burst on a Cluster client that does not know its slots yet runs in call order per key (shared Cluster)", () => {
  it("300 calls over five scripts (two cached on every master, three in no cache) and six hash tags", async () => {
    const admin = connect(inject("coordisAdminClusterUrl"));
    const redis = connect(inject("coordisClusterUrl"));
    try {
      await admin.ping();
      const scripts = Array.from({ length: 5 }, (_, i) => counter(`cluster-burst-${i}`));
      for (const node of (admin as Cluster).nodes("master")) {
        await node.script("LOAD", (scripts[0] as (typeof scripts)[number]).source);
        await node.script("LOAD", (scripts[1] as (typeof scripts)[number]).source);
      }
      const seed = randomSeed();
      const random = mulberry32(seed);
      const keys = Array.from({ length: 6 }, (_, i) => `${prefix}:{cluster-burst-${seed}-${i}}:n`);
      // Each key's counter tells the order in which that key's calls ran: the n-th call made on it must get n.
      const expected: number[] = [];
      const made = new Map<string, number>();
      // Sent at once, before the client has its slot table: the first call is a probe on no known node.
      const pending = Array.from({ length: 300 }, () => {
        const key = keys[Math.floor(random() * keys.length)] as string;
        const n = (made.get(key) ?? 0) + 1;
        made.set(key, n);
        expected.push(n);
        const s = scripts[Math.floor(random() * scripts.length)] as (typeof scripts)[number];
        return runScript(redis, s, [key], []);
      });
      const replies = await withDeadline(Promise.all(pending), 20_000, "the burst to settle");
      expect({ seed, replies }).toEqual({ seed, replies: expected });
    } finally {
      redis.disconnect();
      admin.disconnect();
    }
  });
});
