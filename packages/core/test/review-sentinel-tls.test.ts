/**
 * `rediss+sentinel://` speaks TLS to the sentinels too, not only to the master: with plaintext sentinel connections
 * (ioredis' `sentinelTLS` unset) the `sentinel_password` and every sentinel reply crossed the network in clear, and
 * sentinels serving TLS only could not be reached at all. A plain TCP listener stands in for the sentinel: what is
 * checked is the client's first bytes on the wire.
 */
import { createServer, type Socket } from "node:net";
import { connect } from "@coordis/core";
import { waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";

describe("connect: rediss+sentinel://", () => {
  it("opens the sentinel connections with a TLS handshake, never sending the sentinel password in clear", async () => {
    const received: Buffer[] = [];
    const sockets: Socket[] = [];
    const fake = createServer((s) => {
      sockets.push(s);
      s.on("data", (d) => received.push(d));
      s.on("error", () => {});
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    const { port } = fake.address() as { port: number };
    const redis = connect(`rediss+sentinel://127.0.0.1:${port}/mymaster?sentinel_password=TopSecretSentinel`, {
      connectTimeoutMs: 1_000,
      commandTimeoutMs: 1_000,
    });
    redis.on("error", () => {});
    try {
      void redis.ping().catch(() => {});
      await waitUntil("the client's first bytes to the sentinel", () => received.length > 0, 5_000);
      const bytes = Buffer.concat(received);
      expect(bytes[0]).toBe(0x16); // a TLS record: the handshake
      expect(bytes.toString("latin1")).not.toContain("TopSecretSentinel");
    } finally {
      redis.disconnect();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => fake.close(resolve));
    }
  });
});
