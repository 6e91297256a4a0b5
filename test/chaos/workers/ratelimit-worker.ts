// Rate-limit checker worker: on each "round" from the parent, `clients` concurrent callers hammer the round's keys
// (one key per algorithm, shared by every process) until the round ends, and report per algorithm how many calls
// were admitted, rejected and failed, with the wall-clock bounds of the calls (same clock as Redis: one machine).
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@coordis/core";
import { type Algorithm, RateLimiter, type Rule } from "@coordis/ratelimit";
import { connected, onCommand, stopping, tell } from "./ipc.js";

interface RatelimitWorkerConfig {
  url: string;
  prefix: string;
  clients: number;
  rules: Record<Algorithm, Rule>;
  batch: boolean;
}

interface AlgoStats {
  allowed: number;
  rejected: number;
  errors: number;
  firstSend: number;
  lastSend: number;
  firstReply: number;
  lastReply: number;
}

const cfg = JSON.parse(process.argv[2] as string) as RatelimitWorkerConfig;
const redis = connect(cfg.url, { commandTimeoutMs: 2_000 });
const algorithms = Object.keys(cfg.rules) as Algorithm[];
const limiters = new Map(
  algorithms.map((a) => [
    a,
    new RateLimiter(redis, { prefix: cfg.prefix, rules: [cfg.rules[a]], ...(cfg.batch ? { batch: true } : {}) }),
  ]),
);

async function round(id: number, keys: Record<Algorithm, string>, startAt: number, endAt: number): Promise<void> {
  const stats = Object.fromEntries(
    algorithms.map((a) => [
      a,
      {
        allowed: 0,
        rejected: 0,
        errors: 0,
        firstSend: Number.POSITIVE_INFINITY,
        lastSend: 0,
        firstReply: Number.POSITIVE_INFINITY,
        lastReply: 0,
      } satisfies AlgoStats,
    ]),
  ) as Record<Algorithm, AlgoStats>;
  await sleep(Math.max(0, startAt - Date.now())); // the round's planned start, shared by all processes
  const loop = async (i: number) => {
    const algorithm = algorithms[i % algorithms.length] as Algorithm;
    const limiter = limiters.get(algorithm) as RateLimiter;
    const s = stats[algorithm];
    while (Date.now() < endAt) {
      const sentAt = Date.now();
      s.firstSend = Math.min(s.firstSend, sentAt);
      s.lastSend = Math.max(s.lastSend, sentAt);
      try {
        const d = await limiter.consume(keys[algorithm]);
        if (d.allowed) s.allowed++;
        else s.rejected++;
      } catch {
        s.errors++;
        await sleep(5);
      }
      const at = Date.now();
      s.firstReply = Math.min(s.firstReply, at);
      s.lastReply = Math.max(s.lastReply, at);
    }
  };
  await Promise.all(Array.from({ length: cfg.clients }, (_, i) => loop(i)));
  tell({ type: "round-done", round: id, stats });
}

onCommand((msg) => {
  if (msg.type !== "round" || stopping()) return;
  void round(
    msg.round as number,
    msg.keys as Record<Algorithm, string>,
    msg.startAt as number,
    msg.endAt as number,
  ).catch((err: unknown) => tell({ type: "error", message: String((err as Error).stack ?? err) }));
});

await connected([redis]);
tell({ type: "ready" });
while (!stopping()) await sleep(50);
redis.disconnect();
process.disconnect?.();
