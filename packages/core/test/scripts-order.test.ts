import { connect, type RedisClient, RedisUnavailableError, runScript, ScriptError, slotOf } from "@coordis/core";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { counter, uniqueScript } from "./fixtures/test-scripts.js";

const prefix = testPrefix("order");

describe("script calls keep issue order when one script is cached and another is not", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a script's first call on a client holds back later calls of other scripts until it has run", async () => {
    const redis = server.client();
    const warm = counter("warm");
    const cold = counter("cold");
    await runScript(redis, warm, [`${prefix}:{w}`], []);
    const key = `${prefix}:{first-use}`;
    // cold meets NOSCRIPT and is retried with its source when its error comes back; warm, cached, would run at
    // once if it were sent behind it.
    const { result, sent } = await countCommands(server, () =>
      Promise.all([
        runScript(redis, cold, [key], []),
        runScript(redis, warm, [key], []),
        runScript(redis, cold, [key], []),
        runScript(redis, warm, [key], []),
      ]),
    );
    expect(result).toEqual([1, 2, 3, 4]);
    expect(sent).toEqual({ evalsha: 4, eval: 1 });
    // Both seen now: calls go out at once, one EVALSHA each.
    const again = await countCommands(server, () =>
      Promise.all([runScript(redis, warm, [key], []), runScript(redis, cold, [key], [])]),
    );
    expect(again.result).toEqual([5, 6]);
    expect(again.sent).toEqual({ evalsha: 2 });
  });

  it("a first call that fails with the script's own error counts as run: the next calls go out at once", async () => {
    const redis = server.client();
    const failing = uniqueScript<readonly ["k"], readonly [], number>(
      "failing",
      ["k"],
      [],
      "return redis.error_reply('ERR always fails')",
    );
    const key = `${prefix}:{failing}`;
    await expect(runScript(redis, failing, [key], [])).rejects.toBeInstanceOf(ScriptError);
    // Calls sent at once reach ioredis before runScript returns; a call held back behind a first call does not.
    const client = redis as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> };
    const real = client.evalsha.bind(redis);
    let sent = 0;
    client.evalsha = (...args: unknown[]) => {
      sent++;
      return real(...args);
    };
    const settled = Promise.allSettled([1, 2, 3].map(() => runScript(redis, failing, [key], [])));
    expect(sent).toBe(3);
    for (const s of await settled) expect(s.status).toBe("rejected");
  });

  it("a first call that gets no answer (server paused) fails by the command timeout and holds nothing back after", async () => {
    const redis = server.client({ commandTimeoutMs: 300 });
    const warm = counter("paused-warm");
    const cold = counter("paused-cold");
    await runScript(redis, warm, [`${prefix}:{w}`], []);
    const key = `${prefix}:{paused}`;
    server.pause();
    let settled: PromiseSettledResult<number>[];
    try {
      settled = await Promise.allSettled([runScript(redis, cold, [key], []), runScript(redis, warm, [key], [])]);
    } finally {
      server.resume();
    }
    for (const s of settled) {
      expect(s.status).toBe("rejected");
      expect((s as PromiseRejectedResult).reason).toBeInstanceOf(RedisUnavailableError);
    }
    // The timed-out calls may have run once the server woke up; what follows runs in order behind them.
    const base = Number(await redis.get(key));
    expect(await Promise.all([runScript(redis, cold, [key], []), runScript(redis, warm, [key], [])])).toEqual([
      base + 1,
      base + 2,
    ]);
  });
});

describe("script calls keep issue order per Cluster node", () => {
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisClusterUrl"));
    admin = connect(inject("coordisAdminClusterUrl"));
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  it("a script seen on one node is a first call again on another node", async () => {
    const warm = counter("node-warm");
    const cold = counter("node-cold");
    const slots = (admin as Cluster).slots;
    const keyOf = (tag: string) => `${prefix}:{${tag}}:k`;
    const nodeOf = (tag: string) => slots[slotOf(keyOf(tag))]?.[0];
    const tagA = "a";
    let tagB = "b0";
    for (let i = 1; nodeOf(tagB) === nodeOf(tagA); i++) tagB = `b${i}`;
    // Both scripts have run on A's node through this client; on B's node only warm is cached (another client
    // loaded it).
    await runScript(redis, warm, [keyOf(tagA)], []);
    await runScript(redis, cold, [keyOf(tagA)], []);
    const nodeB = (admin as Cluster)
      .nodes("master")
      .find((n) => `${n.options.host}:${n.options.port}` === nodeOf(tagB));
    expect(nodeB).toBeDefined();
    await nodeB?.script("LOAD", warm.source);
    const key = keyOf(tagB);
    expect(
      await Promise.all([
        runScript(redis, cold, [key], []),
        runScript(redis, warm, [key], []),
        runScript(redis, cold, [key], []),
      ]),
    ).toEqual([1, 2, 3]);
  });
});
