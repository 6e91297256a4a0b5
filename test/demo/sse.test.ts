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

// The demo's event streams, in-process and listening on a real port: connection caps per address and per replica,
// and slow readers disconnected once their bounded buffer is full, all read from the hub's own counters (/metrics).
const prefix = testPrefix("demo-sse");
const PER_ADDRESS = 2;
const TOTAL = 4;
const MAX_BUFFER = 65_536;
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
    REPLICA_ID: "sse",
    // Addresses come from X-Forwarded-For, so one test can act as several clients.
    TRUST_PROXY: "true",
    SSE_MAX_PER_ADDRESS: String(PER_ADDRESS),
    SSE_MAX_CLIENTS: String(TOTAL),
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
  await waitUntil("every stream to close", async () => (await clients()) === 0, DEMO_WAIT);
});

afterAll(async () => {
  await pubsub?.close();
  redis?.disconnect();
  await app?.close();
});

/** The demo's `demo_sse_*` gauges (one value per name, summed over labels unless `label` picks one). */
async function metric(name: string, label?: string): Promise<number> {
  const text = (await app.inject({ method: "GET", url: "/metrics" })).body;
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m?.[1] !== name || (label !== undefined && !(m[2] ?? "").includes(label))) continue;
    sum += Number(m[3]);
    found = true;
  }
  if (!found) throw new Error(`no metric ${name}${label ?? ""} in /metrics`);
  return sum;
}
const clients = () => metric("demo_sse_clients");

/** Opens a stream from `address` with fetch; returns the response (the body stays open until the test ends). */
async function stream(path: string, address: string): Promise<Response> {
  const abort = new AbortController();
  open.push(abort);
  return fetch(`${base}${path}`, {
    signal: abort.signal,
    headers: { accept: "text/event-stream", "x-forwarded-for": address },
  });
}

/** Reads SSE frames of `res` as they arrive; `count(type)` is how many of that event came so far. */
function reader(res: Response) {
  const seen = new Map<string, number>();
  const done = (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
          const event = /^event: (.*)$/m.exec(buffer.slice(0, end))?.[1];
          if (event !== undefined) seen.set(event, (seen.get(event) ?? 0) + 1);
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted
    }
  })();
  return { count: (event: string) => seen.get(event) ?? 0, done };
}

/** A client that sends its request, reads the response head and then never reads again (a paused socket). */
async function stalledClient(path: string, address: string) {
  const socket: Socket = connectTcp(port, "127.0.0.1");
  await once(socket, "connect");
  socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\nx-forwarded-for: ${address}\r\n\r\n`);
  const [head] = (await once(socket, "data")) as [Buffer];
  socket.pause();
  return { socket, head: head.toString("latin1") };
}

describe("demo event streams", () => {
  it("caps open streams per client address (429) and per replica (503), both streams counted together", async () => {
    const a = await stream("/v1/events", "10.2.0.1");
    const a2 = await stream("/v1/audit/stream", "10.2.0.1");
    expect([a.status, a2.status]).toEqual([200, 200]);
    for (const path of ["/v1/events", "/v1/audit/stream"]) {
      const over = await stream(path, "10.2.0.1");
      expect(over.status).toBe(429);
      expect(over.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(over.headers.get("retry-after")).toBe("5");
      expect(((await over.json()) as { detail: string }).detail).toContain(`${PER_ADDRESS} open streams`);
    }
    // Other addresses fill the replica to TOTAL; the next one is refused with 503.
    expect((await stream("/v1/events", "10.2.0.2")).status).toBe(200);
    expect((await stream("/v1/events", "10.2.0.3")).status).toBe(200);
    const full = await stream("/v1/events", "10.2.0.4");
    expect(full.status).toBe(503);
    expect(full.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    await full.body?.cancel();
    expect(await clients()).toBe(TOTAL);
    expect(await metric("demo_sse_refused", 'cap="per-address"')).toBe(2);
    expect(await metric("demo_sse_refused", 'cap="total"')).toBe(1);

    // A closed stream frees its place at once.
    (open[0] as AbortController).abort();
    await waitUntil("the closed stream to be dropped", async () => (await clients()) === TOTAL - 1, DEMO_WAIT);
    expect((await stream("/v1/events", "10.2.0.4")).status).toBe(200);
  });

  it("a client that leaves before its stream opened frees its slot: its address is not locked out", async () => {
    // Each request is sent and its socket closed at once: the audit stream's route is still reading its initial
    // entries from Redis when the client is gone.
    for (let i = 0; i < 6; i++) {
      const socket: Socket = connectTcp(port, "127.0.0.1");
      await once(socket, "connect");
      socket.write(
        "GET /v1/audit/stream HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\nx-forwarded-for: 10.5.0.1\r\n\r\n",
        () => socket.destroy(),
      );
      await once(socket, "close");
    }
    // A stream opened after them from another address answers once every earlier request was handled (their reads
    // were sent to Redis before its own on the same connection).
    const later = await stream("/v1/audit/stream", "10.5.0.2");
    expect(later.status).toBe(200);
    (open.pop() as AbortController).abort();
    await waitUntil("no stream left counted", async () => (await clients()) === 0, DEMO_WAIT);
    for (let i = 0; i < PER_ADDRESS; i++) expect((await stream("/v1/audit/stream", "10.5.0.1")).status).toBe(200);
  });

  it("limits how often one address opens streams (60 a minute), so reconnect churn is bounded too", async () => {
    for (let i = 0; i < 60; i++) {
      const res = await stream(i % 2 === 0 ? "/v1/events" : "/v1/audit/stream", "10.4.0.1");
      expect(res.status, `open ${i + 1}`).toBe(200);
      (open.pop() as AbortController).abort();
      await waitUntil("the stream to close", async () => (await clients()) === 0, DEMO_WAIT);
    }
    const over = await stream("/v1/events", "10.4.0.1");
    expect(over.status).toBe(429);
    expect(over.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(((await over.json()) as { detail: string }).detail).toContain('"streams"');
    expect((await stream("/v1/events", "10.4.0.2")).status).toBe(200);
  });

  it("disconnects a client that stops reading once its bounded buffer is full, and keeps serving readers", async () => {
    const live = await stream("/v1/events", "10.3.0.1");
    expect(live.status).toBe(200);
    const fast = reader(live);
    const stalled = await stalledClient("/v1/events", "10.3.0.2");
    expect(stalled.head).toMatch(/^HTTP\/1.1 200/);
    // Both got their response head, which the hub writes once it registered the stream.

    // 60 KB events, one at a time: each is delivered to the reader before the next is published. The stalled
    // client's socket buffers take a few MB; after that its data waits in the replica until the bound is reached.
    const pad = "x".repeat(60_000);
    const MAX_EVENTS = 1_000;
    let sent = 0;
    let peak = 0;
    for (; sent < MAX_EVENTS; ) {
      await pubsub.publish("events", { type: "big", n: sent, pad });
      sent++;
      await waitUntil(`event ${sent} to reach the reader`, () => fast.count("big") >= sent, {
        ...DEMO_WAIT,
        intervalMs: 5,
      });
      // (A hub without these counters reads as 0 and never leaves the loop early.)
      peak = Math.max(peak, await metric("demo_sse_buffered_bytes").catch(() => 0));
      if ((await metric("demo_sse_slow_disconnects").catch(() => 0)) > 0) break;
    }
    expect(sent, "the stalled client was never disconnected").toBeLessThan(MAX_EVENTS);
    expect(await metric("demo_sse_slow_disconnects")).toBe(1);
    // Neither the stalled client nor the whole hub ever held more than the bound per client.
    expect(await metric("demo_sse_peak_client_buffer_bytes")).toBeLessThanOrEqual(MAX_BUFFER);
    expect(peak).toBeLessThanOrEqual(2 * MAX_BUFFER);
    // The reader is still connected and got every event; the stalled socket was ended by the server.
    expect(await clients()).toBe(1);
    expect(fast.count("big")).toBe(sent);
    const ended = new Promise<void>((resolve) => {
      stalled.socket.on("close", () => resolve());
      stalled.socket.on("error", () => resolve());
    });
    let received = 0;
    stalled.socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
    });
    stalled.socket.resume();
    await ended;
    expect(received).toBeLessThan(sent * pad.length);
  });
});
