import type { RedisServer } from "@coordis/testing";
import { countCommands, startRedis } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("countCommands with a custom ignore list", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("counts the block's INFO and ECHO but never the harness' own", async () => {
    const redis = server.client();
    await redis.ping();
    const counts = await countCommands(
      server,
      async () => {
        await redis.info("server");
        await redis.echo("hello");
        await redis.set("k", "v");
      },
      { ignore: [] },
    );
    expect(counts.sent).toEqual({ info: 1, echo: 1, set: 1 });
    expect(counts.roundTrips).toBe(3);
    expect(counts.executed).toEqual({ info: 1, echo: 1, set: 1 });
  });

  it("with the default list, a block's ECHO is in executed as it is in sent", async () => {
    const redis = server.client();
    await redis.ping();
    const counts = await countCommands(server, async () => {
      await redis.echo("hello");
    });
    expect(counts.sent).toEqual({ echo: 1 });
    expect(counts.executed).toEqual({ echo: 1 });
  });
});
