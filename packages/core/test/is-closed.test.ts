import { connect, isClosed } from "@coordis/core";
import { waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

// isClosed() tells the primitives that a client will never answer again, so that they stop retrying on it. ioredis
// leaves a client its application disconnected while it waited to reconnect in status "reconnecting" for good (no
// close event comes any more to end it): it must count as closed all the same.
describe("isClosed()", () => {
  const redis = proxiedServer();

  it("a client disconnected by the application while it reconnects is closed; one that reconnects is not", async () => {
    const client = connect(redis.proxy.url, { commandTimeoutMs: 300 });
    client.on("error", () => {});
    try {
      await client.ping();
      expect(isClosed(client)).toBe(false);
      redis.proxy.refuse();
      redis.proxy.dropConnections();
      await waitUntil("the client to wait for its next attempt", () => client.status === "reconnecting", 5_000);
      expect(isClosed(client)).toBe(false); // reconnecting on its own: it will answer again
      client.disconnect();
      expect(client.status).toBe("reconnecting"); // what ioredis leaves it in
      expect(isClosed(client)).toBe(true);
    } finally {
      client.disconnect();
      await redis.proxy.accept();
    }
  });

  it("a ready client disconnected is closed once it ends; connected again, it is not", async () => {
    const client = connect(redis.proxy.url);
    await client.ping();
    client.disconnect();
    await waitUntil("the client to end", () => client.status === "end", 5_000);
    expect(isClosed(client)).toBe(true);
    await client.connect();
    expect(isClosed(client)).toBe(false);
    expect(await client.ping()).toBe("PONG");
    client.disconnect();
  });
});
