import {
  connect,
  coreScripts,
  DEADLINE_MARGIN_MS,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  runScriptSource,
  ScriptError,
} from "@coordis/core";
import {
  countCommands,
  eventually,
  type RedisServer,
  startRedis,
  startRedisCluster,
  testPrefix,
} from "@coordis/testing";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

describe("script registry on a standalone server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("runs by EVALSHA in one round trip once the script is cached, with a typed reply", async () => {
    await runScript(redis, coreScripts.probe, [`${prefix}:{a}:v`, `${prefix}:{a}:c`], ["warm", 10_000]);
    const { result, roundTrips, sent } = await countCommands(server, () =>
      runScript(redis, coreScripts.probe, [`${prefix}:{a}:v`, `${prefix}:{a}:c`], ["hello", 10_000]),
    );
    expect(roundTrips).toBe(1);
    expect(sent).toEqual({ evalsha: 1 });
    const [value, count, nowMs] = result;
    expect(value).toBe("hello");
    expect(count).toBe(2);
    expect(Math.abs(nowMs - Date.now())).toBeLessThan(5_000);
    expect(await redis.get(`${prefix}:{a}:v`)).toBe("hello");
  });

  it("recovers from NOSCRIPT after SCRIPT FLUSH with one EVAL, then goes back to EVALSHA", async () => {
    await redis.script("FLUSH");
    const first = await countCommands(server, () =>
      runScript(redis, coreScripts.probe, [`${prefix}:{b}:v`, `${prefix}:{b}:c`], ["x", 10_000]),
    );
    expect(first.sent).toEqual({ evalsha: 1, eval: 1 });
    const second = await countCommands(server, () =>
      runScript(redis, coreScripts.probe, [`${prefix}:{b}:v`, `${prefix}:{b}:c`], ["y", 10_000]),
    );
    expect(second.sent).toEqual({ evalsha: 1 });
    expect(second.result[1]).toBe(2);
  });

  it("keeps calls in issue order across a NOSCRIPT recovery", async () => {
    await redis.script("FLUSH");
    const tag = `{${prefix}-order}`;
    const call = (value: string) => runScript(redis, coreScripts.probe, [`${tag}:v`, `${tag}:c`], [value, 10_000]);
    // A and B go out back to back and both meet NOSCRIPT. C is issued the moment A's fallback EVAL has been
    // written, before B's error is handled: without care C's EVALSHA (the script is loaded by then) would run
    // before B's EVAL. The spy only observes the real client; every command still goes to the real server.
    const client = redis as unknown as { eval: (...args: unknown[]) => Promise<unknown> };
    const realEval = client.eval.bind(redis);
    let c: Promise<[string, number, number]> | undefined;
    client.eval = (...args: unknown[]) => {
      const sent = realEval(...args);
      c ??= call("c");
      return sent;
    };
    try {
      const [a, b] = await Promise.all([call("a"), call("b")]);
      const third = await (c as Promise<[string, number, number]>);
      expect([a[1], b[1], third[1]]).toEqual([1, 2, 3]);
      expect(await redis.get(`${tag}:v`)).toBe("c");
    } finally {
      delete (client as { eval?: unknown }).eval;
    }
  });

  it("maps a script error to ScriptError naming the script", async () => {
    await redis.hset(`${prefix}:{c}:c`, "f", "1");
    const err = await runScript(redis, coreScripts.probe, [`${prefix}:{c}:v`, `${prefix}:{c}:c`], ["x", 1_000]).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ScriptError);
    expect((err as ScriptError).code).toBe("ERR_SCRIPT");
    expect((err as ScriptError).script).toBe("core/probe");
    expect((err as ScriptError).message).toMatch(/WRONGTYPE/);
  });

  it("runScriptSource sends EVAL with the source in one round trip, cached or not, and maps errors alike", async () => {
    const keys = [`${prefix}:{e}:v`, `${prefix}:{e}:c`] as const;
    await redis.script("FLUSH");
    const uncached = await countCommands(server, () => runScriptSource(redis, coreScripts.probe, keys, ["x", 10_000]));
    expect(uncached.sent).toEqual({ eval: 1 });
    expect(uncached.roundTrips).toBe(1);
    expect(uncached.result.slice(0, 2)).toEqual(["x", 1]);
    const cached = await countCommands(server, () => runScriptSource(redis, coreScripts.probe, keys, ["y", 10_000]));
    expect(cached.sent).toEqual({ eval: 1 });
    expect(cached.result.slice(0, 2)).toEqual(["y", 2]);
    await redis.hset(`${prefix}:{e2}:c`, "f", "1");
    const err = await runScriptSource(
      redis,
      coreScripts.probe,
      [`${prefix}:{e2}:v`, `${prefix}:{e2}:c`],
      ["x", 1_000],
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScriptError);
    expect((err as ScriptError).script).toBe("core/probe");
  });

  it("fails with RedisUnavailableError within the command timeout when the server is killed, and recovers", async () => {
    const client = connect(server.url, { commandTimeoutMs: 500 });
    await client.ping();
    await server.kill();
    const started = Date.now();
    const err = await runScript(client, coreScripts.probe, [`${prefix}:{d}:v`, `${prefix}:{d}:c`], ["x", 1_000]).catch(
      (e: unknown) => e,
    );
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as RedisUnavailableError).code).toBe("ERR_REDIS_UNAVAILABLE");
    expect(elapsed).toBeLessThan(500 + 1_000);
    await server.restart();
    const reply = await eventually(
      "the probe to run after the restart",
      () => runScript(client, coreScripts.probe, [`${prefix}:{d}:v`, `${prefix}:{d}:c`], ["back", 1_000]),
      { timeoutMs: 10_000, intervalMs: 50, ignoreErrors: true },
    );
    expect((reply as unknown[])[0]).toBe("back");
    client.disconnect();
  });
});

describe("script registry on the shared Redis Cluster", () => {
  let redis: RedisClient;
  /** Unrestricted: SCRIPT FLUSH and SCRIPT EXISTS are not granted to Coordis. */
  let admin: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisClusterUrl"));
    admin = connect(inject("coordisAdminClusterUrl"));
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  it("recovers from NOSCRIPT on every cluster node after SCRIPT FLUSH", async () => {
    await admin.ping();
    const masters = (admin as Cluster).nodes("master");
    expect(masters.length).toBe(3);
    await Promise.all(masters.map((node) => node.script("FLUSH")));
    for (const node of masters) expect(await node.script("EXISTS", coreScripts.probe.sha1)).toEqual([0]);
    // Enough distinct tags to land on every master.
    for (let i = 0; i < 60; i++) {
      const tag = `${prefix}:{flush-${i}}`;
      const [value] = await runScript(redis, coreScripts.probe, [`${tag}:v`, `${tag}:c`], [`f${i}`, 10_000]);
      expect(value).toBe(`f${i}`);
    }
    for (const node of masters) expect(await node.script("EXISTS", coreScripts.probe.sha1)).toEqual([1]);
  });

  it("runs a 2-key hash-tagged script on many slots without CROSSSLOT", async () => {
    for (let i = 0; i < 30; i++) {
      const tag = `${prefix}:{slot-${i}}`;
      const [value, count] = await runScript(redis, coreScripts.probe, [`${tag}:v`, `${tag}:c`], [`v${i}`, 10_000]);
      expect(value).toBe(`v${i}`);
      expect(count).toBe(1);
    }
  });
});

describe("script registry on a cluster that goes down", () => {
  it("fails with RedisUnavailableError within the command timeout plus margin, never hangs", async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    const client = connect(cluster.url, { commandTimeoutMs: 500 });
    try {
      await runScript(client, coreScripts.probe, ["{z}:v", "{z}:c"], ["x", 1_000]);
      await Promise.all(cluster.nodes.map((n) => n.kill()));
      for (const tag of ["{z}", "{y}", "{x}"]) {
        const started = Date.now();
        const err = await runScript(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["x", 1_000]).catch(
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(RedisUnavailableError);
        expect(Date.now() - started).toBeLessThan(500 + DEADLINE_MARGIN_MS + 1_000);
      }
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  });
});
