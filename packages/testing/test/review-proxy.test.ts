import { createConnection } from "node:net";
import { type FaultProxy, startProxy } from "@coordis/testing";
import { afterEach, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const opened: FaultProxy[] = [];

/** Resolves with the connection error code, or "connected". */
function rawConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function refusingProxy(): Promise<FaultProxy> {
  const proxy = await startProxy({ target: url });
  opened.push(proxy);
  proxy.refuse();
  return proxy;
}

afterEach(async () => {
  for (const p of opened.splice(0)) await p.close();
});

describe("startProxy: refuse/accept/close while an accept() is still starting", () => {
  it("close() during accept() leaves nothing listening (the port refuses, no server keeps the process alive)", async () => {
    const proxy = await refusingProxy();
    const accepting = proxy.accept();
    await proxy.close();
    await accepting;
    expect(proxy.stats().refusing).toBe(true);
    expect(await rawConnect(proxy.port)).toBe("ECONNREFUSED");
  });

  it("refuse() during accept() wins: the proxy ends up refusing", async () => {
    const proxy = await refusingProxy();
    const accepting = proxy.accept();
    proxy.refuse();
    await accepting;
    expect(proxy.stats().refusing).toBe(true);
    expect(await rawConnect(proxy.port)).toBe("ECONNREFUSED");
  });

  it("accept() called twice at once listens once; a later refuse() stops it", async () => {
    const proxy = await refusingProxy();
    await Promise.all([proxy.accept(), proxy.accept()]);
    expect(proxy.stats().refusing).toBe(false);
    expect(await rawConnect(proxy.port)).toBe("connected");
    proxy.refuse();
    expect(await rawConnect(proxy.port)).toBe("ECONNREFUSED");
  });
});
