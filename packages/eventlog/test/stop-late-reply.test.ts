import { connect, type RedisClient } from "@coordis/core";
import { EventLog, eventlogScripts } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("ellate");

// Consumer.stop({ timeoutMs }) resolves at its deadline whatever Redis does. A claim sent before the deadline and
// answered after it must not start handlers: the application has been told the consumer stopped (and may have closed
// what its handler uses). The claimed entries stay pending and are delivered again after claimIdleMs.
describe("a consumer stopped at its deadline starts no handler afterwards", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = connect(server.url);
    admin = connect(server.adminUrl);
  });
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
    if (server.paused) server.resume();
    await server.stop();
  });

  it("a claim answered after stop() resolved: its entries are not handled by the stopped consumer, but by the next", async () => {
    const log = new EventLog<number>(redis, "late-claim", { prefix });
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    await log.append(7);
    // A consumer that died holding the entry.
    await admin.xreadgroup("GROUP", "g", "ghost", "COUNT", 1, "STREAMS", log.keys.stream, ">");
    await waitUntil("the ghost's entry is idle longer than claimIdleMs", async () => {
      const [[, , idle] = []] = (await admin.xpending(log.keys.stream, "g", "-", "+", 1)) as [string, string, number][];
      return Number(idle) >= 50;
    });

    // The server stops answering just before the consumer's first claim is written.
    const client = redis as unknown as { evalsha: (sha: string, ...args: unknown[]) => Promise<unknown> };
    const evalsha = client.evalsha;
    let claimSent!: () => void;
    const claimOut = new Promise<void>((resolve) => {
      claimSent = resolve;
    });
    client.evalsha = function (this: unknown, sha: string, ...args: unknown[]) {
      if (sha === eventlogScripts.claim.sha1 && !server.paused) {
        server.pause();
        claimSent();
      }
      return evalsha.call(this, sha, ...args);
    };
    const handledBy: string[] = [];
    try {
      const c1 = group.consume(() => void handledBy.push("c1"), {
        claimIdleMs: 10,
        claimIntervalMs: 10,
        blockMs: 10,
      });
      await claimOut;
      await c1.stop({ timeoutMs: 200 });
      server.resume();
      // The claim runs now: the entry becomes c1's (or, were c1 to handle it, is acknowledged)...
      await waitUntil("the claim ran", async () => {
        const pending = (await admin.xpending(log.keys.stream, "g", "-", "+", 1)) as [string, string][];
        return pending.length === 0 || pending[0]?.[1] === "c1";
      });
      // ...and its reply reaches c1's client (same connection as this PING, answered in order) and is processed.
      await redis.ping();
      await new Promise((resolve) => setImmediate(resolve));
      expect(handledBy).toEqual([]);
    } finally {
      client.evalsha = evalsha;
      if (server.paused) server.resume();
    }
    // Not lost: the next consumer of the group takes it over once it is idle.
    const c2 = log.group("g", { consumer: "c2" }).consume(() => void handledBy.push("c2"), {
      claimIdleMs: 10,
      claimIntervalMs: 10,
      blockMs: 10,
    });
    try {
      await waitUntil("c2 handled the entry", () => handledBy.length > 0);
      expect(handledBy).toEqual(["c2"]);
      await waitUntil("acknowledged", () => c2.stats().acked === 1);
    } finally {
      await c2.stop();
    }
    expect(await admin.xpending(log.keys.stream, "g")).toEqual([0, null, null, null]);
  });
});
