import { once } from "node:events";
import { connect as connectTcp, type Socket } from "node:net";
import { connect, type RedisClient } from "@coordis/core";
import { buildApp, loadConfig } from "@coordis/demo";
import { PubSub } from "@coordis/pubsub";
import { testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { DEMO_WAIT } from "./replicas.js";

// The event streams' slow-reader bound at its smallest (4096 bytes, the least SSE_MAX_BUFFER_BYTES accepts): it
// applies to clients the kernel stopped taking data from, never to readers that keep up, whatever one tick writes to
// them (a stream's initial frames, a burst of messages). Read from the hub's own counters (/metrics).
const prefix = testPrefix("demo-sse-readers");
const MAX_BUFFER = 4_096;
const TOKEN = "sse-readers-admin-token";
let app: FastifyInstance;
let base: string;
let port: number;
let redis: RedisClient;
let pubsub: PubSub;
const open: AbortController[] = [];

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: prefix,
    REPLICA_ID: "sse-readers",
    ADMIN_TOKEN: TOKEN,
    TRUST_PROXY: "true",
    SSE_MAX_BUFFER_BYTES: String(MAX_BUFFER),
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  await app.listen({ port: 0, host: "127.0.0.1" });
  port = (app.server.address() as { port: number }).port;
  base = `http://127.0.0.1:${port}`;
  redis = connect(inject("coordisRedisUrl"));
  pubsub = new PubSub(redis, { prefix });
});

afterEach(async () => {
  for (const c of open.splice(0)) c.abort();
  await waitUntil("every stream to close", async () => (await metric("demo_sse_clients")) === 0, DEMO_WAIT);
});

afterAll(async () => {
  await pubsub?.close();
  redis?.disconnect();
  await app?.close();
});

/** A `demo_sse_*` gauge of /metrics, summed over its labels. */
async function metric(name: string): Promise<number> {
  const text = (await app.inject({ method: "GET", url: "/metrics" })).body;
  const values = text
    .split("\n")
    .map((line) => /^(\w+)(?:\{[^}]*\})? (\S+)$/.exec(line))
    .filter((m) => m?.[1] === name)
    .map((m) => Number(m?.[2]));
  if (values.length === 0) throw new Error(`no metric ${name} in /metrics`);
  return values.reduce((a, b) => a + b, 0);
}

/** Opens a stream from `address` and reads its frames: `count(event)` so far, `ended()` once the server closed it. */
async function reader(path: string, address: string) {
  const abort = new AbortController();
  open.push(abort);
  const res = await fetch(`${base}${path}`, {
    signal: abort.signal,
    headers: { accept: "text/event-stream", "x-forwarded-for": address },
  }).catch((err: Error) => {
    // The hub writes the response head with the stream's first frames: a stream cut off among them has no head.
    throw new Error(`${path} was cut off before its response head arrived`, { cause: err });
  });
  expect(res.status).toBe(200);
  const seen = new Map<string, number>();
  const sizes: number[] = [];
  let ended = false;
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
          const frame = buffer.slice(0, end);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          if (event !== undefined) {
            seen.set(event, (seen.get(event) ?? 0) + 1);
            sizes.push(frame.length);
          }
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted by the test
    }
    ended = !abort.signal.aborted;
  })();
  return {
    count: (event: string) => seen.get(event) ?? 0,
    ended: () => ended,
    bytes: () => sizes.reduce((a, b) => a + b, 0),
  };
}

describe("demo event streams at the smallest buffer bound", () => {
  it("never disconnects a reader that keeps up: initial frames and bursts beyond the bound arrive in full", async () => {
    // Three audit entries of ~2.6 KB each (100 key ids): the audit stream's initial frames, written in one tick,
    // come to ~8 KB, twice the bound.
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({
        method: "POST",
        url: "/v1/admin/keys",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        payload: { count: 100 },
      });
      expect(res.statusCode).toBe(201);
    }
    const audit = await reader("/v1/audit/stream", "10.6.0.1");
    const initial = (await app.inject({ method: "GET", url: "/v1/audit?limit=20" })).json() as { entries: unknown[] };
    await waitUntil(
      "the audit stream's initial frames (or its end)",
      () => audit.ended() || audit.count("audit") >= initial.entries.length,
      DEMO_WAIT,
    );
    expect(audit.ended(), "the reader was disconnected during its initial frames").toBe(false);
    expect(audit.count("audit")).toBe(initial.entries.length);
    expect(audit.bytes()).toBeGreaterThan(MAX_BUFFER);

    // A burst of 200 events of 1 KB published at once, arriving in batches, some of them far beyond the bound.
    const events = await reader("/v1/events", "10.6.0.2");
    await waitUntil("the hello frame", () => events.count("hello") === 1 || events.ended(), DEMO_WAIT);
    const BURST = 200;
    const pad = "y".repeat(1_000);
    await Promise.all(Array.from({ length: BURST }, (_, n) => pubsub.publish("events", { type: "burst", n, pad })));
    await waitUntil(
      "the burst (or the stream's end)",
      () => events.ended() || events.count("burst") === BURST,
      DEMO_WAIT,
    );
    expect(events.ended(), "the reader was disconnected during the burst").toBe(false);
    expect(events.count("burst")).toBe(BURST);

    // Frames bigger than the bound, one at a time, reach a reader that keeps up too.
    const big = "z".repeat(3 * MAX_BUFFER);
    for (let n = 1; n <= 5; n++) {
      await pubsub.publish("events", { type: "big", n, big });
      await waitUntil(`big frame ${n}`, () => events.ended() || events.count("big") === n, DEMO_WAIT);
      expect(events.ended(), `the reader was disconnected at big frame ${n}`).toBe(false);
    }

    expect(await metric("demo_sse_slow_disconnects")).toBe(0);
    expect(await metric("demo_sse_clients")).toBe(2);
    // Nothing ever waited for a client that was behind.
    expect(await metric("demo_sse_peak_client_buffer_bytes")).toBe(0);
  });

  it("still disconnects a client that stops reading, holding at most the bound for it", async () => {
    const live = await reader("/v1/events", "10.7.0.1");
    await waitUntil("the hello frame", () => live.count("hello") === 1, DEMO_WAIT);
    const socket: Socket = connectTcp(port, "127.0.0.1");
    await once(socket, "connect");
    socket.write(
      "GET /v1/events HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\nx-forwarded-for: 10.7.0.2\r\n\r\n",
    );
    const [head] = (await once(socket, "data")) as [Buffer];
    expect(head.toString("latin1")).toMatch(/^HTTP\/1.1 200/);
    socket.pause();
    const closed = new Promise<void>((resolve) => {
      socket.on("close", () => resolve());
      socket.on("error", () => resolve());
    });

    // 60 KB events, each delivered to the reader before the next: the stalled socket's buffers fill up, then its
    // frames wait in the replica until the next one would pass the bound.
    const before = await metric("demo_sse_slow_disconnects");
    const pad = "x".repeat(60_000);
    let sent = 0;
    for (; sent < 1_000; ) {
      await pubsub.publish("events", { type: "big", n: sent, pad });
      sent++;
      await waitUntil(`event ${sent} to reach the reader`, () => live.count("big") >= sent || live.ended(), {
        ...DEMO_WAIT,
        intervalMs: 5,
      });
      expect(live.ended(), `the reader was disconnected at event ${sent}`).toBe(false);
      if ((await metric("demo_sse_slow_disconnects")) > before) break;
    }
    expect(sent, "the stalled client was never disconnected").toBeLessThan(1_000);
    expect(await metric("demo_sse_slow_disconnects")).toBe(before + 1);
    expect(await metric("demo_sse_peak_client_buffer_bytes")).toBeLessThanOrEqual(MAX_BUFFER);
    expect(await metric("demo_sse_clients")).toBe(1);
    expect(live.count("big")).toBe(sent);
    socket.resume();
    await closed;
  });
});
