import { connect, type RedisClient, RedisUnavailableError, ScriptError } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("elbatch-refused");

/** The class of each settled call's error ("ok" for a call that succeeded). */
async function kinds(calls: Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(calls);
  return settled.map((s) => (s.status === "fulfilled" ? "ok" : (s.reason as Error).constructor.name));
}

describe("micro-batched appends refused by a Redis that does not take writes", () => {
  let server: RedisServer;
  let admin: RedisClient;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    admin = connect(server.adminUrl);
    redis = connect(server.url);
  });
  afterAll(async () => {
    admin.disconnect();
    redis.disconnect();
    await server.stop();
  });

  it.each([
    ["plain", {}],
    ["with idempotency keys", { idem: true }],
  ])("%s: each caller gets RedisUnavailableError, as unbatched, and nothing is appended", async (kind, how) => {
    const name = `refused-${kind.length}`;
    const batched = new EventLog<string>(redis, name, { prefix, batch: true });
    const plain = new EventLog<string>(redis, name, { prefix });
    const opts = (i: number) => ("idem" in how ? { idempotencyKey: `k${i}` } : {});
    await Promise.all([batched.append("a", opts(1)), batched.append("b", opts(2))]);
    // No replica is connected: Redis refuses every write (NOREPLICAS), a refusal that a retry later may pass.
    await admin.config("SET", "min-replicas-to-write", "1");
    try {
      expect(await kinds([plain.append("c", opts(3))])).toEqual([RedisUnavailableError.name]);
      const got = await kinds([batched.append("d", opts(4)), batched.append("e", opts(5))]);
      expect(got).toEqual([RedisUnavailableError.name, RedisUnavailableError.name]);
      expect(got).not.toContain(ScriptError.name);
    } finally {
      await admin.config("SET", "min-replicas-to-write", "0");
    }
    expect(await redis.xlen(batched.keys.stream)).toBe(2);
  });
});
