import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, socketsOpenedBy, startRedis } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("socketsOpenedBy", () => {
  let tls: RedisServer;
  beforeAll(async () => {
    tls = await startRedis({ tls: true });
  });
  afterAll(async () => {
    await tls?.stop();
  });

  it("sees TLS connections (rediss://) too, and their close", async () => {
    let client: RedisClient | undefined;
    const opened = await socketsOpenedBy(async () => {
      client = connect(tls.url);
      await client.ping();
    });
    expect(opened).toHaveLength(1);
    expect(opened.filter((s) => !s.destroyed)).toHaveLength(1);
    client?.disconnect();
    await new Promise<void>((resolve) =>
      opened[0]?.destroyed ? resolve() : opened[0]?.once("close", () => resolve()),
    );
    expect(opened.filter((s) => !s.destroyed)).toEqual([]);
  });

  it("leaves out other contexts' sockets, and a nested call's sockets are the outer call's too", async () => {
    const clients: RedisClient[] = [];
    // Scheduled outside the call: its connection is not the call's, although it opens while the call runs.
    const outside = new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        const c = connect(tls.url);
        clients.push(c);
        c.ping().then(() => resolve(), reject);
      }),
    );
    let inner: Awaited<ReturnType<typeof socketsOpenedBy>> = [];
    try {
      const outer = await socketsOpenedBy(async () => {
        const a = connect(tls.url);
        clients.push(a);
        await a.ping();
        inner = await socketsOpenedBy(async () => {
          const b = connect(tls.url);
          clients.push(b);
          await b.ping();
        });
        await outside;
      });
      expect(clients).toHaveLength(3);
      expect(inner).toHaveLength(1);
      expect(outer).toHaveLength(2);
      expect(outer).toContain(inner[0]);
    } finally {
      for (const client of clients) client.disconnect();
    }
  });
});
