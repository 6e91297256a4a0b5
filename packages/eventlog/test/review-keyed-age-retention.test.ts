import { connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type FaultProxy, startProxy, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elkeyedage");
const chain = { key: Buffer.from("0123456789abcdef0123456789abcdef"), keyId: "k1" };

// A keyed chain's id is chosen by the client from the server time it learned from earlier replies: it lags server
// time by the reply's and the request's transit (the script accepts up to 10 s). Retention by age (XTRIM MINID ~,
// whole nodes) must not trim the entry the same script just appended: with it goes the whole log, the entry is
// delivered to no tail or consumer, and verify() reports the sound log as tampered (its recorded head is missing).
describe("a keyed chain with maxAgeMs shorter than an append's transit", () => {
  let proxy: FaultProxy;
  let slow: RedisClient;
  let direct: RedisClient;
  beforeAll(async () => {
    proxy = await startProxy({ target: inject("coordisRedisUrl") });
    slow = connect(proxy.url, { commandTimeoutMs: 5_000 });
    direct = connect(inject("coordisRedisUrl"));
  });
  afterAll(async () => {
    slow.disconnect();
    direct.disconnect();
    await proxy.close();
  });

  it("keeps the entry just appended, and verify() finds the log sound", async () => {
    const log = new EventLog<number>(slow, "slow", { prefix, chain, maxAgeMs: 20 });
    const reader = new EventLog<number>(direct, "slow", { prefix, chain, maxAgeMs: 20 });
    await log.append(0); // learns the chain's state (and server time) without latency
    proxy.setLatency(60); // each append's id now lags server time by about 120 ms, well past maxAgeMs
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) ids.push((await log.append(i)).id);
    proxy.setLatency(0);
    const newest = (await reader.read({ reverse: true, limit: 1 })).entries[0];
    expect(newest?.id).toBe(ids[2]);
    expect(newest?.data).toBe(3);
    expect(await reader.verify()).toMatchObject({ ok: true, unchainedCount: 0 });
  });
});
