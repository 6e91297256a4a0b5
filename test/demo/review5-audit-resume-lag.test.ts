import type { RedisClient } from "@coordis/core";
import { buildApp, loadConfig } from "@coordis/demo";
import { EventLog } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSse, type SseClient } from "./replicas.js";

// A client that reconnects to `/v1/audit/stream` with `Last-Event-ID` may reach a replica whose live tail has not yet
// passed that entry on (the client got it from another replica's tail, or from a catch-up read, and this replica's
// tail is behind: retrying after a Redis error, or simply slower). With nothing after the client's id in the log, the
// stream opened with no frames and no notion of where the client was, so the tail's next frames, the entry the client
// had last and any before it, were sent again, out of order. The replica's tail is held back here by taking XREAD
// (the tail's only way to read new entries) from the service's ACL user.
//
// The first frames read the log with the chain's check, which threw on an entry that fails it (one before it deleted
// or changed): every stream whose first frames reached it answered 500 (a reconnect from before it for good, a new
// stream until 20 newer entries), and so did the dashboard's snapshot. The live tail skips such an entry; so do they.
const prefix = testPrefix("demo-audit-lag");
let server: RedisServer;
let admin: RedisClient;
let app: FastifyInstance;
let url: string;
let log: EventLog<{ n: number }>;

beforeAll(async () => {
  server = await startRedis({ leastPrivilege: true });
  admin = server.adminClient();
  const config = loadConfig({
    REDIS_URL: server.url,
    COORDIS_PREFIX: prefix,
    REPLICA_ID: "lag",
    SSE_MAX_PER_ADDRESS: "2",
    TRUST_PROXY: "true",
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  url = await app.listen({ port: 0, host: "127.0.0.1" });
  log = new EventLog(admin, "audit", { prefix, chain: true, maxLen: 10_000 });
});

afterAll(async () => {
  await app?.close();
  await server?.stop();
});

const user = () => server.user?.name as string;
const audits = (s: SseClient) => s.events.filter((e) => e.event === "audit").map((e) => e.id);

describe("demo audit stream: resuming on a replica whose tail is behind", () => {
  it("an entry the client had already is not sent again when the replica's tail passes it on late", async () => {
    const watcher = await openSse(`${url}/v1/audit/stream`);
    let resumed: SseClient | undefined;
    try {
      // The tail's XREAD now fails (and is retried): once it passed `before` on, it passes nothing more for now.
      await admin.call("ACL", "SETUSER", user(), "-xread");
      const before = await log.append({ n: 1 });
      await watcher.next((e) => e.id === before.id);

      // The client got `seen` elsewhere and reconnects here with it: nothing after it in the log.
      const seen = await log.append({ n: 2 });
      resumed = await openSse(`${url}/v1/audit/stream`, { "last-event-id": seen.id });

      // The tail catches up, passing `seen` on, then a new entry.
      await admin.call("ACL", "SETUSER", user(), "+xread");
      const next = await log.append({ n: 3 });
      const client = resumed;
      await waitUntil("the new entry on the resumed stream", async () => audits(client).includes(next.id));
      expect(audits(client)).toEqual([next.id]);
    } finally {
      await admin.call("ACL", "SETUSER", user(), "+xread");
      watcher.close();
      resumed?.close();
    }
  });

  it("a Last-Event-ID past the log's newest entry (a log started over on a clock behind) still gets the new entries", async () => {
    const newest = await log.append({ n: 4 });
    const [ms] = newest.id.split("-");
    const stream = await openSse(`${url}/v1/audit/stream`, { "last-event-id": `${Number(ms) + 3_600_000}-0` });
    try {
      const next = await log.append({ n: 5 });
      await stream.next((e) => e.id === next.id);
      expect(audits(stream)).toEqual([next.id]);
    } finally {
      stream.close();
    }
  });

  it("a stream whose catch-up read fails answers an error and frees its slot", async () => {
    const last = (await log.append({ n: 6 })).id;
    const from = { "x-forwarded-for": "10.5.0.1" }; // an address of its own: earlier streams' slots are not its
    const held = await openSse(`${url}/v1/audit/stream`, from);
    try {
      await admin.call("ACL", "SETUSER", user(), "-xrange");
      const failed = await fetch(`${url}/v1/audit/stream`, { headers: { ...from, "last-event-id": last } });
      expect(failed.status).toBeGreaterThanOrEqual(500);
      expect(failed.headers.get("content-type")).toMatch(/application\/problem\+json/);
      await admin.call("ACL", "SETUSER", user(), "+xrange");
      // The address' second slot (of 2) is free again.
      const again = await openSse(`${url}/v1/audit/stream`, { ...from, "last-event-id": last });
      again.close();
    } finally {
      await admin.call("ACL", "SETUSER", user(), "+xrange");
      held.close();
    }
  });

  it("an entry that fails the chain's check (one before it deleted) is left out, not every stream refused", async () => {
    const a = await log.append({ n: 7 });
    const b = await log.append({ n: 8 });
    await log.append({ n: 9 }); // follows the entry deleted below: fails the check
    const d = await log.append({ n: 10 });
    await admin.call("XDEL", log.keys.stream, b.id);
    const from = { "x-forwarded-for": "10.5.0.2" };
    const resumed = await openSse(`${url}/v1/audit/stream`, { ...from, "last-event-id": a.id });
    const fresh = await openSse(`${url}/v1/audit/stream`, from);
    try {
      const next = await log.append({ n: 11 });
      await resumed.next((e) => e.id === next.id);
      await fresh.next((e) => e.id === next.id);
      // The entry after the deleted one is left out, as the live tail leaves it out (`/v1/audit/verify` reports it).
      expect(audits(resumed)).toEqual([d.id, next.id]);
      expect(audits(fresh).slice(-3)).toEqual([a.id, d.id, next.id]);
      // The dashboard's snapshot shows the same latest entries.
      const snapshot = await app.inject({ method: "GET", url: "/v1/dashboard" });
      expect(snapshot.statusCode, snapshot.body).toBe(200);
      const shown = (snapshot.json() as { audit: Array<{ id: string }> }).audit.map((e) => e.id);
      expect(shown.slice(0, 3)).toEqual([next.id, d.id, a.id]);
      // The paged list shows it, flagged.
      const listed = await app.inject({ method: "GET", url: "/v1/audit?limit=5", headers: from });
      expect(listed.statusCode, listed.body).toBe(200);
      const entries = (listed.json() as { entries: Array<{ id: string; verified?: boolean }> }).entries;
      const flagged = entries.filter((e) => e.verified === false).map((e) => e.id);
      expect(flagged).toHaveLength(1);
      expect(entries.map((e) => e.id)).toEqual(expect.arrayContaining([next.id, d.id, ...flagged, a.id]));
    } finally {
      resumed.close();
      fresh.close();
    }
  });
});
