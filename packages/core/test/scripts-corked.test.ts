import { coreScripts, type RedisClient, RedisUnavailableError, runScript } from "@coordis/core";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("corked script calls: order across a NOSCRIPT recovery", () => {
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

  it("calls written together in one corked write that all meet NOSCRIPT are retried in call order", async () => {
    await runScript(redis, coreScripts.probe, keys("warm"), ["w", 10_000]);
    await admin.script("FLUSH");
    const [kv, kc] = keys("inflight");
    const call = (v: string) => runScript(redis, coreScripts.probe, [kv, kc], [v, 10_000]);
    const { result, sent } = await countCommands(server, () =>
      Promise.all([call("c0"), call("c1"), call("c2"), call("c3"), call("c4")]),
    );
    expect(sent).toEqual({ evalsha: 5, eval: 5 });
    expect(result.map((r) => [r[0], r[1]])).toEqual([
      ["c0", 1],
      ["c1", 2],
      ["c2", 3],
      ["c3", 4],
      ["c4", 5],
    ]);
  });
});

describe("corked script calls when the connection drops mid-answer", () => {
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

  it("script calls in flight get their replies up to the cut, then RedisUnavailableError (outcome unknown)", async () => {
    const { outcomes, ran } = await cutMidAnswer(runScript, "cut-plain");
    const answered = outcomes.filter((o) => o.status === "fulfilled");
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
    expect(answered.length).toBeGreaterThan(0);
    expect(failed.length).toBeGreaterThan(0);
    for (const f of failed) {
      expect(f.reason).toBeInstanceOf(RedisUnavailableError);
      // Not re-sent (autoResendUnfulfilledCommands is off): each fails at the close, not at its command timeout.
      expect(((f.reason as Error).cause as Error).message).toMatch(/Connection is closed/);
    }
    expect(ran).toBeGreaterThanOrEqual(answered.length);
  });
});
