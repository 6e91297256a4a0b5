import { createConnection } from "node:net";
import { performance } from "node:perf_hooks";
import {
  connect,
  coreScripts,
  InvalidArgumentError,
  type RedisClient,
  RedisUnavailableError,
  runScript,
} from "@coordis/core";
import { type FaultProxy, startProxy, startRedis, testPrefix, waitUntil, withDeadline } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("proxy");
const url = inject("coordisRedisUrl");
const opened: Array<{ close(): unknown }> = [];

async function proxyFor(options: { seed?: number } = {}): Promise<FaultProxy> {
  const proxy = await startProxy({ target: url, ...options });
  opened.push(proxy);
  return proxy;
}

/** A client through the proxy, connected and answering (polled, so a slow first connect on a busy box is fine). */
async function client(proxyUrl: string, commandTimeoutMs = 1_000): Promise<RedisClient> {
  const c = connect(proxyUrl, { commandTimeoutMs });
  opened.push({ close: () => c.disconnect() });
  await waitUntil(
    "a first PING through the proxy",
    () =>
      c.ping().then(
        () => true,
        () => false,
      ),
    10_000,
  );
  return c;
}

async function medianPingMs(c: RedisClient, n = 7): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await c.ping();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)] as number;
}

const probe = (c: RedisClient, value: string) =>
  runScript(c, coreScripts.probe, [`${prefix}:{p}:v`, `${prefix}:{p}:c`], [value, 10_000]);

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

afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
});

describe("startProxy", () => {
  it("forwards traffic and keeps the target URL's scheme, credentials and db", async () => {
    const proxy = await proxyFor();
    // The shared server's URL carries the least-privilege user; the proxy keeps it and swaps host and port.
    expect(url).toMatch(/^redis:\/\/coordis:[0-9a-f]+@127\.0\.0\.1:\d+$/);
    expect(proxy.url).toBe(url.replace(/@127\.0\.0\.1:\d+$/, `@127.0.0.1:${proxy.port}`));
    const c = await client(proxy.url);
    await c.set(`${prefix}:fwd`, "1");
    expect(await c.get(`${prefix}:fwd`)).toBe("1");
    const s = proxy.stats();
    expect(s.connections).toBe(1);
    expect(s.accepted).toBe(1);
    expect(s.bytesToTarget).toBeGreaterThan(0);
    expect(s.bytesToClients).toBeGreaterThan(0);

    const withDb = await startProxy({ target: "redis://:s%40cret@127.0.0.1:6390/3?command_timeout_ms=500" });
    opened.push(withDb);
    expect(withDb.url).toBe(`redis://:s%40cret@127.0.0.1:${withDb.port}/3?command_timeout_ms=500`);
    expect(withDb.target).toEqual({ host: "127.0.0.1", port: 6390 });
  });

  it("takes a RedisServer as target and keeps its password", async () => {
    const server = await startRedis({ password: "pw" });
    try {
      const proxy = await startProxy({ target: server });
      opened.push(proxy);
      expect(proxy.url).toBe(`redis://:pw@127.0.0.1:${proxy.port}`);
      const c = await client(proxy.url);
      expect(await c.ping()).toBe("PONG");
    } finally {
      for (const o of opened.splice(0)) await o.close();
      await server.stop();
    }
  });

  it("rejects invalid targets and ports", async () => {
    await expect(startProxy({ target: "redis+cluster://127.0.0.1:1,127.0.0.1:2" })).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(startProxy({ target: { host: "127.0.0.1", port: 0 } })).rejects.toMatchObject({
      argument: "target.port",
    });
    await expect(startProxy({ target: url, listenPort: -1 })).rejects.toMatchObject({ argument: "listenPort" });
    const proxy = await proxyFor();
    expect(() => proxy.setLatency(-1)).toThrow(InvalidArgumentError);
    expect(() => proxy.setLatency(10, Number.NaN)).toThrow(InvalidArgumentError);
  });

  it("setLatency adds measurable latency per direction, and 0 removes it", async () => {
    const proxy = await proxyFor();
    const c = await client(proxy.url, 2_000);
    await c.ping();
    const base = await medianPingMs(c);
    proxy.setLatency(60);
    const slow = await medianPingMs(c, 5);
    // 60 ms each way: a round trip is ~120 ms slower. Generous lower bound, no upper bound (shared CPU).
    expect(slow).toBeGreaterThan(base + 100);
    expect(proxy.stats().latencyMs).toBe(60);
    proxy.setLatency(0);
    const after = await medianPingMs(c);
    expect(after).toBeLessThan(slow - 60);
  });

  it("keeps byte order under jitter (pipelined replies arrive in order)", async () => {
    const proxy = await proxyFor({ seed: 7 });
    const c = await client(proxy.url, 5_000);
    const key = `${prefix}:order`;
    await c.del(key);
    proxy.setLatency(10, 10);
    const replies = await Promise.all(Array.from({ length: 200 }, () => c.incr(key)));
    expect(replies).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it("dropConnections resets clients; they reconnect and commands succeed afterwards", async () => {
    const proxy = await proxyFor();
    const c = await client(proxy.url);
    await c.set(`${prefix}:drop`, "1");
    const closed = new Promise<void>((resolve) => c.once("close", () => resolve()));
    expect(proxy.dropConnections()).toBe(1);
    await withDeadline(closed, 2_000, "client close after drop");
    expect(proxy.stats().dropped).toBe(1);
    await waitUntil(
      "a command through the proxy after drop",
      () =>
        c.get(`${prefix}:drop`).then(
          (v) => v === "1",
          () => false,
        ),
      10_000,
    );
    expect(proxy.stats().accepted).toBeGreaterThanOrEqual(2);
  });

  it("blackhole makes scripts fail with RedisUnavailableError within the command timeout; heal restores", async () => {
    const proxy = await proxyFor();
    const c = await client(proxy.url, 300);
    expect((await probe(c, "before"))[0]).toBe("before");
    proxy.blackhole();
    expect(proxy.stats().blackholed).toBe(true);
    const started = performance.now();
    const err = await withDeadline(probe(c, "during"), 2_000, "probe during blackhole").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(proxy.stats().bytesDiscarded).toBeGreaterThan(0);
    // The connection is still open: the client saw silence, not a reset.
    expect(proxy.stats().connections).toBe(1);
    expect(proxy.heal()).toBe(1); // it lost bytes, so it is reset
    await waitUntil(
      "probe after heal",
      () =>
        probe(c, "after").then(
          (r) => r[0] === "after",
          () => false,
        ),
      10_000,
    );
    expect(proxy.stats().blackholed).toBe(false);
  });

  it("an idle connection survives a blackhole", async () => {
    const proxy = await proxyFor();
    const c = await client(proxy.url);
    await c.ping();
    proxy.blackhole();
    expect(proxy.heal()).toBe(0);
    expect(await c.ping()).toBe("PONG");
    expect(proxy.stats().dropped).toBe(0);
  });

  it("latency in flight when a blackhole starts is discarded too", async () => {
    const proxy = await proxyFor();
    const c = await client(proxy.url, 300);
    await c.ping();
    proxy.setLatency(200);
    const pending = c.ping().catch((e: unknown) => e);
    await waitUntil("the ping to be held back by the proxy", () => proxy.stats().bytesInFlight > 0, 10_000);
    proxy.blackhole();
    expect(proxy.stats().bytesInFlight).toBe(0);
    expect(await withDeadline(pending, 2_000, "ping during blackhole")).toBeInstanceOf(Error);
    expect(proxy.stats().bytesDiscarded).toBeGreaterThan(0);
    proxy.setLatency(0);
    expect(proxy.heal()).toBe(1);
  });

  it("refuse makes new connections fail with ECONNREFUSED; open ones keep working; accept reopens", async () => {
    const proxy = await proxyFor();
    const c = await client(proxy.url);
    await c.ping();
    proxy.refuse();
    expect(proxy.stats().refusing).toBe(true);
    expect(await rawConnect(proxy.port)).toBe("ECONNREFUSED");
    expect(await c.ping()).toBe("PONG");
    await proxy.accept();
    expect(await rawConnect(proxy.port)).toBe("connected");
    const fresh = await client(proxy.url);
    expect(await fresh.ping()).toBe("PONG");
  });

  it("close resets every connection and stops listening", async () => {
    const proxy = await proxyFor();
    const c = await client(proxy.url, 300);
    await c.ping();
    await proxy.close();
    await proxy.close();
    expect(await rawConnect(proxy.port)).toBe("ECONNREFUSED");
    await expect(c.ping()).rejects.toThrow();
  });
});

afterAll(async () => {
  for (const o of opened.splice(0)) await o.close();
});

describe("proxy in front of a killed server", () => {
  let server: Awaited<ReturnType<typeof startRedis>>;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("clients through the proxy fail fast while the server is down and recover after restart", async () => {
    const proxy = await startProxy({ target: server });
    opened.push(proxy);
    const c = await client(proxy.url, 300);
    await c.ping();
    await server.kill();
    const err = await withDeadline(probe(c, "down"), 2_000, "probe while down").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    await server.restart();
    await waitUntil(
      "probe after restart",
      () =>
        probe(c, "up").then(
          (r) => r[0] === "up",
          () => false,
        ),
      10_000,
    );
  });
});
