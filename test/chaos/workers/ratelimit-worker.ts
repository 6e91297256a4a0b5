// Rate-limit checker worker: on each "round" from the parent, `clients` concurrent callers hammer the round's keys
// (one key per algorithm, shared by every process) until the round ends, and report per algorithm how many calls
// were admitted, rejected and failed, with the wall-clock bounds of the calls (same clock as Redis: one machine).
// Extra callers hammer two more keys per round: a key shared by a login limiter and two versions of an API limiter
// (v1: one rule; v2: the same rule plus one more, as replicas of a rolling deploy), and a key whose rules change
// mid-round (every process switches at the same planned instant).
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@coordis/core";
import { type Algorithm, RateLimiter, type Rule } from "@coordis/ratelimit";
import { config, connected, onCommand, stopped, stopping, tell } from "./ipc.js";

interface RatelimitWorkerConfig {
  url: string;
  prefix: string;
  clients: number;
  rules: Record<Algorithm, Rule>;
  batch: boolean;
  /** Callers per process on the shared key (rotating over login, v1, v2) and on the rule-change key. */
  sharedClients: number;
  changeClients: number;
  shared: Record<SharedKind, Rule[]>;
  /** Rule-change variants: round r uses changes[r % changes.length], `before` until switchAt, then `after`. */
  changes: Array<{ before: Rule[]; after: Rule[] }>;
}

type SharedKind = "login" | "v1" | "v2";

interface CountStats {
  allowed: number;
  rejected: number;
  errors: number;
}

/** Calls under the changed rules: what the parent needs to check that nothing passes before a rejection's wait. */
interface ChangeStats {
  /** Latest reply to a call made with the old rules. */
  lastBeforeReply: number;
  /** Rejections under the new rules where sent + retryAfterMs grew (the running envelope): [sent, replied, waitMs]. */
  rejections: Array<[number, number, number]>;
  /** Admissions under the new rules: [sent, replied]. */
  admissions: Array<[number, number]>;
  errors: number;
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

const cfg = await config<RatelimitWorkerConfig>();
const redis = connect(cfg.url, { commandTimeoutMs: 2_000 });
const algorithms = Object.keys(cfg.rules) as Algorithm[];
const batchOption = cfg.batch ? { batch: true } : {};
const sharedLimiters = Object.fromEntries(
  (Object.keys(cfg.shared) as SharedKind[]).map((k) => [
    k,
    new RateLimiter(redis, { prefix: cfg.prefix, rules: cfg.shared[k], ...batchOption }),
  ]),
) as Record<SharedKind, RateLimiter>;
const changeLimiters = cfg.changes.map((c) => ({
  before: new RateLimiter(redis, { prefix: cfg.prefix, rules: c.before, ...batchOption }),
  after: new RateLimiter(redis, { prefix: cfg.prefix, rules: c.after, ...batchOption }),
}));
const limiters = new Map(
  algorithms.map((a) => [
    a,
    new RateLimiter(redis, { prefix: cfg.prefix, rules: [cfg.rules[a]], ...(cfg.batch ? { batch: true } : {}) }),
  ]),
);

interface RoundKeys extends Record<Algorithm, string> {
  shared: string;
  change: string;
}

async function round(id: number, keys: RoundKeys, startAt: number, endAt: number, switchAt: number): Promise<void> {
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
  const shared = Object.fromEntries(
    (Object.keys(cfg.shared) as SharedKind[]).map((k) => [k, { allowed: 0, rejected: 0, errors: 0 }]),
  ) as Record<SharedKind, CountStats>;
  const sharedLoop = async (i: number) => {
    const kinds = Object.keys(cfg.shared) as SharedKind[];
    while (Date.now() < endAt) {
      const kind = kinds[i++ % kinds.length] as SharedKind;
      try {
        const d = await sharedLimiters[kind].consume(keys.shared);
        if (d.allowed) shared[kind].allowed++;
        else shared[kind].rejected++;
      } catch {
        shared[kind].errors++;
        await sleep(5);
      }
    }
  };
  const change: ChangeStats = { lastBeforeReply: 0, rejections: [], admissions: [], errors: 0 };
  const variant = changeLimiters[id % changeLimiters.length] as { before: RateLimiter; after: RateLimiter };
  let envelope = 0;
  const changeLoop = async () => {
    while (Date.now() < endAt) {
      const sent = Date.now();
      const after = sent >= switchAt;
      try {
        const d = await (after ? variant.after : variant.before).consume(keys.change);
        const replied = Date.now();
        if (!after) change.lastBeforeReply = Math.max(change.lastBeforeReply, replied);
        else if (d.allowed) change.admissions.push([sent, replied]);
        else if (sent + d.retryAfterMs > envelope) {
          envelope = sent + d.retryAfterMs;
          change.rejections.push([sent, replied, d.retryAfterMs]);
        }
      } catch {
        change.errors++;
        // an old-rules call whose outcome is unknown may still land later: it counts as one with the old rules
        if (!after) change.lastBeforeReply = Math.max(change.lastBeforeReply, Date.now() + 5_000);
        await sleep(5);
      }
    }
  };
  await Promise.all([
    ...Array.from({ length: cfg.clients }, (_, i) => loop(i)),
    ...Array.from({ length: cfg.sharedClients }, (_, i) => sharedLoop(i)),
    ...Array.from({ length: cfg.changeClients }, () => changeLoop()),
  ]);
  tell({ type: "round-done", round: id, stats, shared, change });
}

onCommand((msg) => {
  if (msg.type !== "round" || stopping()) return;
  void round(
    msg.round as number,
    msg.keys as RoundKeys,
    msg.startAt as number,
    msg.endAt as number,
    msg.switchAt as number,
  ).catch((err: unknown) => tell({ type: "error", message: String((err as Error).stack ?? err) }));
});

await connected([redis]);
tell({ type: "ready" });
await stopped();
redis.disconnect();
process.disconnect?.();
