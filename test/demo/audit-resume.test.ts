import { connect, type RedisClient } from "@coordis/core";
import { buildApp, loadConfig } from "@coordis/demo";
import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { openSse, type SseClient } from "./replicas.js";

// `/v1/audit/stream` frames carry the audit entries' ids, so a client that reconnects (an EventSource does so by
// itself, sending `Last-Event-ID`) gets exactly the entries it missed, in order, none twice, even while entries are
// being appended as it reconnects.
const prefix = testPrefix("demo-audit-resume");
let app: FastifyInstance;
let url: string;
let redis: RedisClient;
let log: EventLog<{ n: number }>;

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: prefix,
    REPLICA_ID: "ar",
    TRUST_PROXY: "true",
    SSE_MAX_PER_ADDRESS: "50",
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  url = await app.listen({ port: 0, host: "127.0.0.1" });
  redis = connect(inject("coordisRedisUrl"));
  // The demo's audit log, appended to directly (as the demo's admin routes do).
  log = new EventLog(redis, "audit", { prefix, chain: true, maxLen: 10_000 });
});

afterAll(async () => {
  await app?.close();
  redis?.disconnect();
});

let client = 0;
const open = (headers: Record<string, string> = {}) =>
  openSse(`${url}/v1/audit/stream`, { "x-forwarded-for": `10.9.0.${++client % 250}`, ...headers });
const audits = (s: SseClient) => s.events.filter((e) => e.event === "audit");
const ids = (s: SseClient) => audits(s).map((e) => e.id);

/** Every id of the log after `after` (all of them without it), oldest first. */
async function logIds(after?: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = after;
  for (;;) {
    const page = await log.read({ limit: 1000, ...(cursor === undefined ? {} : { after: cursor }) });
    for (const e of page.entries) out.push(e.id);
    if (page.entries.length < 1000) return out;
    cursor = page.entries.at(-1)?.id;
  }
}

describe("demo audit stream: resuming from Last-Event-ID", () => {
  it("each frame carries its entry's id; a reconnect gets exactly the entries appended while it was away", async () => {
    const first = await log.append({ n: 1 });
    const stream = await open();
    try {
      const last = await log.append({ n: 2 });
      await stream.next((e) => e.id === last.id);
      const seen = audits(stream);
      expect(seen.every((e) => e.id === (e.data as { id: string }).id)).toBe(true);
      expect(ids(stream)).toContain(first.id);
    } finally {
      stream.close();
    }
    const lastSeen = (await logIds()).at(-1) as string;
    const missed = [];
    for (let n = 3; n <= 5; n++) missed.push((await log.append({ n })).id);
    const again = await open({ "last-event-id": lastSeen });
    try {
      const live = await log.append({ n: 6 });
      await again.next((e) => e.id === live.id);
      expect(ids(again)).toEqual([...missed, live.id]);
    } finally {
      again.close();
    }
  });

  it("entries appended while clients reconnect reach each of them once, in the log's order, none missed", async () => {
    const from = (await log.append({ n: 0 })).id;
    let appending = true;
    const appender = (async () => {
      let n = 0;
      while (appending) await log.append({ n: ++n });
    })();
    const streams: SseClient[] = [];
    try {
      for (let i = 0; i < 8; i++) streams.push(await open({ "last-event-id": from }));
    } finally {
      appending = false;
      await appender;
    }
    const end = (await log.append({ n: -1 })).id;
    try {
      const expected = await logIds(from);
      for (const s of streams) {
        await s.next((e) => e.id === end);
        expect(ids(s)).toEqual(expected);
      }
    } finally {
      for (const s of streams) s.close();
    }
  });

  it("a client that missed 1000 entries or more gets a reset event, then the 20 latest", async () => {
    const from = (await log.append({ n: 0 })).id;
    await Promise.all(Array.from({ length: 1000 }, (_, n) => log.append({ n })));
    const latest = (await logIds(from)).slice(-20);
    const stream = await open({ "last-event-id": from });
    try {
      await waitUntil("the 20 latest entries", async () => ids(stream).length >= 20);
      expect(stream.events[0]).toEqual({ event: "reset", data: { after: from, missedAtLeast: 1000 } });
      expect(ids(stream)).toEqual(latest);
    } finally {
      stream.close();
    }
  });

  it.each(["not-an-id", "1-2-3", "01-2", "-1-0"])("Last-Event-ID %j is a 400 problem, no stream", async (bad) => {
    const res = await app.inject({ method: "GET", url: "/v1/audit/stream", headers: { "last-event-id": bad } });
    expect(res.statusCode).toBe(400);
    expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
    expect(res.json().detail).toMatch(/Last-Event-ID/);
  });
});
