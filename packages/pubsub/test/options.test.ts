import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { HEARTBEAT_INTERVAL_MS, PubSub } from "@coordis/pubsub";
import { countCommands, type RedisServer, startRedis } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("PubSub options are checked whole", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = connect(server.url);
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it("an unknown option key (a typo) is an InvalidArgumentError naming it, and nothing is sent", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ prefx: "app" }, "options.prefx"],
      [{ queuelimit: 10 }, "options.queuelimit"],
      [{ prefix: "app", shard: false }, "options.shard"],
    ];
    const { sent } = await countCommands(server, async () => {
      for (const [options, argument] of cases) {
        let caught: unknown;
        try {
          new PubSub(redis, options as never);
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(InvalidArgumentError);
        expect((caught as InvalidArgumentError).argument).toBe(argument);
        expect((caught as Error).message).toContain("known: codec, prefix, observer, queueLimit, maxMessageBytes");
      }
    });
    expect(sent).toEqual({});
    // Every documented key is accepted.
    const ok = new PubSub(redis, {
      prefix: "app",
      queueLimit: 5,
      maxMessageBytes: 1024,
      sharded: false,
      heartbeatMs: 1_000,
      observer: {},
      codec: { encode: String, decode: String },
    });
    expect(ok.prefix).toBe("app");
    await ok.close();
  });

  it("a heartbeatMs that is not whole milliseconds from 100 to 600,000 is refused, naming the option and the range", async () => {
    const bad: unknown[] = [0, 99, 600_001, -1_000, 1_000.5, Number.NaN, Number.POSITIVE_INFINITY, "1000", null, true];
    const { sent } = await countCommands(server, async () => {
      for (const heartbeatMs of bad) {
        let caught: unknown;
        try {
          new PubSub(redis, { heartbeatMs } as never);
        } catch (err) {
          caught = err;
        }
        expect(caught, String(heartbeatMs)).toBeInstanceOf(InvalidArgumentError);
        expect((caught as InvalidArgumentError).argument).toBe("options.heartbeatMs");
        expect((caught as Error).message).toContain("whole milliseconds from 100 to 600000");
      }
    });
    expect(sent).toEqual({});
    // The bounds themselves are accepted; the default is the exported constant.
    expect(HEARTBEAT_INTERVAL_MS).toBe(5_000);
    for (const heartbeatMs of [100, 600_000, HEARTBEAT_INTERVAL_MS]) await new PubSub(redis, { heartbeatMs }).close();
  });

  it("a prefix whose channels would be another prefix's channels is refused, naming options.prefix; nothing is sent", async () => {
    // Channel names may contain ":": with prefix "app", channel "chat:ps:room" is the Redis channel
    // app:ps:chat:ps:room, which is channel "room" of prefix "app:ps:chat" (and psubscribe("*") under "app" reads it).
    const { sent } = await countCommands(server, async () => {
      for (const prefix of ["app:ps:chat", "app:ps", "a:b:ps:c", "app:cache-bus", "app:cache-bus:x"]) {
        expect(() => new PubSub(redis, { prefix }), prefix).toThrow(InvalidArgumentError);
        expect(() => new PubSub(redis, { prefix }), prefix).toThrow(/options\.prefix.*segment/);
      }
    });
    expect(sent).toEqual({});
    // The segment as a first segment, or as part of one, is fine: no other prefix's channels look like these.
    for (const prefix of ["ps", "ps:app", "app:psx", "app:xps", "app-ps", "app:ps-x"]) {
      const b = new PubSub(redis, { prefix });
      expect(b.redisChannel("room")).toBe(`${prefix}:ps:room`);
      await b.close();
    }
  });
});
