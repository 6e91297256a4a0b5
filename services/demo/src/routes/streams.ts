import { setTimeout as sleep } from "node:timers/promises";
import { GapError, UnverifiedEntryError } from "@coordis/eventlog";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { DemoMessage } from "../model.js";
import { problem } from "../problem.js";
import { CHANNEL, type Demo } from "../services.js";
import { idAfter, type SseFrame, SseHub, STREAM_ID } from "../sse.js";
import { registerSseMetrics } from "../sse-metrics.js";

/**
 * Live streams: `/v1/events` (every replica's pub/sub messages) and `/v1/audit/stream` (the audit log's live tail).
 * Both share one hub, so the per-address and total caps count a client's streams together; slow readers are
 * disconnected (see SseHub). Opening a stream is rate limited per address.
 */
export const streamRoutes: FastifyPluginAsyncTypebox<{ demo: Demo }> = async (app, { demo }) => {
  const { config, replica, audit, limits } = demo;
  const sse = new SseHub({
    maxClients: config.sseMaxClients,
    maxPerAddress: config.sseMaxPerAddress,
    maxBufferBytes: config.sseMaxBufferBytes,
  });
  const registry = app.coordis.metrics?.registry;
  if (registry !== undefined) registerSseMetrics(registry, sse);
  const stop = new AbortController();

  // Pub/sub fan-out: a score submitted on any replica reaches the SSE clients of every replica.
  const unsubscribe = await demo.pubsub.subscribe<DemoMessage>(CHANNEL, async (message) => {
    sse.send("events", message.type, message);
  });

  // One live tail of the audit log per replica, fanned out to its SSE clients. After an error it goes on where it
  // stopped, not from the log's end (which would drop whatever was appended meanwhile): after the last entry it passed
  // on, after a gap's end (a log Redis lost and started over: the entry that revealed the gap is the new log's first),
  // or past an entry that failed the chain's check (`/v1/audit/verify` reports it).
  const tailLoop = (async () => {
    let from = "end";
    while (!stop.signal.aborted) {
      try {
        for await (const entry of audit.tail({ from, signal: stop.signal })) {
          from = entry.id;
          sse.send("audit", "audit", entry, entry.id);
        }
      } catch (err) {
        if (err instanceof GapError) from = err.resumeAfter ?? "end";
        else if (err instanceof UnverifiedEntryError) from = err.entryId;
        if (!stop.signal.aborted) await sleep(500).catch(() => {});
      }
    }
  })();

  app.addHook("preClose", async () => {
    sse.closeAll();
  });
  app.coordis.onClose(async () => {
    stop.abort();
    await tailLoop;
    await unsubscribe().catch(() => {});
  });

  const headers = { "x-replica-id": replica };
  /**
   * The first frames of an audit stream: the 20 latest entries, or, for a client that reconnects with the id of the
   * last entry it got (`Last-Event-ID`, which an EventSource sends by itself), every entry after it, when they are
   * fewer than 1000; 1000 or more is a `reset` event (`{ after, missedAtLeast: 1000 }`) and the 20 latest entries.
   * `after` is where the client is in the log when the log has its entry: the live tail of this replica may be behind
   * the one the client got that entry from, and what it passes on late is not sent again.
   */
  const firstFrames = async (last: string | undefined): Promise<{ frames: SseFrame[]; after?: string }> => {
    const frames: SseFrame[] = [];
    if (last !== undefined) {
      const missed = await audit.read({ after: last, limit: 1000, unverified: "skip" });
      const all = missed.next === undefined && missed.entries.length < 1000;
      if (all && missed.entries.length > 0) {
        return { frames: missed.entries.map((entry) => ({ event: "audit", data: entry, id: entry.id })), after: last };
      }
      if (all) {
        // Nothing missed, if the log reaches the client's entry; a log that does not (lost with Redis' data, its
        // clock behind) sets no bound, or its entries would never reach the client.
        const newest = (await audit.read({ reverse: true, limit: 1, unverified: "mark" })).entries[0]?.id;
        return { frames: [], ...(newest !== undefined && !idAfter(last, newest) ? { after: last } : {}) };
      }
      frames.push({ event: "reset", data: { after: last, missedAtLeast: 1000 } });
    }
    const recent = await audit.read({ reverse: true, limit: 20, unverified: "skip" });
    for (const entry of recent.entries.reverse()) frames.push({ event: "audit", data: entry, id: entry.id });
    return { frames };
  };
  app.get(
    "/v1/events",
    {
      config: limits.streams,
      schema: { tags: ["streams"], summary: "SSE: new top-10 entries, job runs, player changes" },
    },
    async (req, reply) => {
      if (!sse.open(req, reply, "events", headers, [{ event: "hello", data: { replica } }])) return reply;
    },
  );
  app.get(
    "/v1/audit/stream",
    {
      config: limits.streams,
      schema: { tags: ["streams"], summary: "SSE: the audit log's live tail" },
    },
    async (req, reply) => {
      const last = req.headers["last-event-id"];
      if (last !== undefined && (typeof last !== "string" || !STREAM_ID.test(last))) {
        const detail = "Last-Event-ID must be the id of an audit entry (<ms>-<seq>), as this stream sent it.";
        return problem(reply, 400, "Bad Request", detail);
      }
      // The stream is held while its first frames are read: entries the live tail passes on meanwhile are sent after
      // them, none twice (they carry their ids), none missed.
      if (!sse.hold(req, reply, "audit")) return reply;
      let initial: { frames: SseFrame[]; after?: string };
      try {
        initial = req.method === "HEAD" ? { frames: [] } : await firstFrames(last);
      } catch (err) {
        sse.abandon(reply);
        throw err;
      }
      sse.release(req, reply, headers, initial.frames, initial.after);
      return reply;
    },
  );
};
