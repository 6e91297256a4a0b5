import { performance } from "node:perf_hooks";
import type { Algorithm, Rule } from "@coordis/ratelimit";
import {
  describeSchedule,
  type FaultProxy,
  faultSchedule,
  type RedisServer,
  runSchedule,
  startProxy,
  startRedis,
  testPrefix,
  tryWaitUntil,
} from "@coordis/testing";
import { scenarioResult } from "../lib/result.js";
import { WorkerPool } from "../lib/worker-pool.js";
import { Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";

const PROCESSES = 3;
const CLIENTS_PER_PROCESS = 100;
/** How long every caller hammers the round's keys, ms. */
const ROUND_MS = 1_500;
/** Rounds run whatever the duration, so the short CI version always checks more than one window. */
const MIN_ROUNDS = 2;
/** Aligned windows of the sliding window (the fixed window opens at a key's first call; a round is well inside it). */
const WINDOW_MS = 60_000;

/**
 * One rule per algorithm. The windows are long enough that each round (a fresh key per algorithm) is one window:
 * fixed and sliding window must admit exactly `limit`. Token bucket and GCRA refill quickly enough (50 per second)
 * to test refill too: they must admit `burst` plus what refilled during the round, within ±1.
 */
const RULES: Record<Algorithm, Rule> = {
  "fixed-window": { name: "fw", limit: 200, windowMs: WINDOW_MS, algorithm: "fixed-window" },
  "sliding-window": { name: "sw", limit: 200, windowMs: WINDOW_MS, algorithm: "sliding-window" },
  "token-bucket": { name: "tb", limit: 100, windowMs: 2_000, burst: 100, algorithm: "token-bucket" },
  gcra: { name: "gc", limit: 100, windowMs: 2_000, burst: 100, algorithm: "gcra" },
};

/**
 * A key shared by three limiters: a login limiter and two versions of an API limiter (v1: the API rule; v2: the API
 * rule plus one more, as old and new replicas of a rolling deploy). Unnamed rules: their names derive from the rule,
 * so the login and API rules are distinct counters and v1/v2's API rule is one. Per round (one 60-s window of a fresh
 * key): login admits at most LOGIN, v2 at most EXTRA, v1 + v2 at most API, each exactly when saturated.
 */
const SHARED_CLIENTS = 9;
const LOGIN = 20;
const API = 150;
const EXTRA = 40;
const SHARED: Record<"login" | "v1" | "v2", Rule[]> = {
  login: [{ limit: LOGIN, windowMs: WINDOW_MS }],
  v1: [{ limit: API, windowMs: WINDOW_MS }],
  v2: [
    { limit: API, windowMs: WINDOW_MS },
    { limit: EXTRA, windowMs: WINDOW_MS, algorithm: "sliding-window" },
  ],
};

/**
 * A key whose rules change mid-round (every process switches at the same planned instant, SWITCH_MS after the round
 * starts): the state carries over (same name and algorithm), and once no call with the old rules is left, nothing may
 * pass before a rejection's retryAfterMs, in particular not when the old rules' expiry (300 ms) passes.
 */
const CHANGE_CLIENTS = 4;
const SWITCH_MS = 150;
const CHANGES: Array<{ before: Rule[]; after: Rule[] }> = [
  { before: [{ name: "c", limit: 20, windowMs: 300 }], after: [{ name: "c", limit: 20, windowMs: WINDOW_MS }] },
  {
    before: [{ name: "c", limit: 20, windowMs: 300, algorithm: "token-bucket" }],
    after: [{ name: "c", limit: 20, windowMs: 3_600_000, algorithm: "token-bucket" }],
  },
  {
    before: [{ name: "c", limit: 20, burst: 20, windowMs: 300, algorithm: "gcra" }],
    after: [{ name: "c", limit: 1, burst: 20, windowMs: 300, algorithm: "gcra" }],
  },
];

interface CountStats {
  allowed: number;
  rejected: number;
  errors: number;
}

interface ChangeStats {
  lastBeforeReply: number;
  rejections: Array<[number, number, number]>;
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

interface Worst {
  round: number;
  admitted: number;
  bounds: [number, number];
  demand: number;
}

/**
 * Rate-limit checker: 3 processes × 100 concurrent callers on shared keys, one key per algorithm and round, while
 * the server is paused (shorter than the command timeout) and latency comes and goes on each process' proxy. Per
 * round (= one window of a fresh key) the admitted count must stay within the algorithm's bound, and hit it exactly
 * when demand exceeded it and no call failed. Per round also: a key shared by a login limiter and two versions of an
 * API limiter (each rule's bound, see SHARED), and a key whose rules change mid-round (see CHANGES).
 */
export const ratelimitScenario: ChaosScenario = {
  name: "ratelimit",
  description: "3 processes × 100 callers, each algorithm on shared keys; pauses and latency; admitted per window",
  defaultDurationMs: 60_000,
  async run({ seed, durationMs, log }): Promise<ScenarioResult> {
    const started = performance.now();
    const schedule = faultSchedule({
      seed,
      generate: {
        durationMs,
        faults: ["pause", "latency"],
        meanIntervalMs: Math.min(2_000, Math.max(400, Math.round(durationMs / 10))),
        targets: { servers: 1, proxies: PROCESSES },
        faultMs: [100, 600],
        latencyMs: [5, 80],
      },
    });
    log(describeSchedule(schedule));
    const violations = new Violations();
    const prefix = testPrefix();
    const proxies: FaultProxy[] = [];
    const worst: Partial<Record<Algorithm, Worst>> = {};
    const counts = {
      calls: 0,
      allowed: 0,
      errors: 0,
      rounds: 0,
      exactRounds: 0,
      straddled: 0,
      sharedExactRounds: 0,
      changeRoundsChecked: 0,
      changeRejectionsChecked: 0,
    };
    const reports = new Map<number, Array<Record<Algorithm, AlgoStats>>>();
    const extraReports = new Map<
      number,
      Array<{ shared: Record<keyof typeof SHARED, CountStats>; change: ChangeStats }>
    >();
    // The processes load while the server starts.
    const pool = new WorkerPool({
      file: "ratelimit-worker.ts",
      count: PROCESSES,
      crashes: violations,
      onMessage(msg, worker) {
        if (msg.type === "round-done") {
          const list = reports.get(msg.round as number) ?? [];
          list.push(msg.stats as Record<Algorithm, AlgoStats>);
          reports.set(msg.round as number, list);
          const extra = extraReports.get(msg.round as number) ?? [];
          extra.push({
            shared: msg.shared as Record<keyof typeof SHARED, CountStats>,
            change: msg.change as ChangeStats,
          });
          extraReports.set(msg.round as number, extra);
        } else if (msg.type === "error") violations.add("worker-error", `worker ${worker.slot}: ${msg.message}`);
      },
    });
    let server: RedisServer | undefined;
    try {
      server = await startRedis({ leastPrivilege: true });
      const target = server;
      proxies.push(
        ...(await Promise.all(Array.from({ length: PROCESSES }, (_, i) => startProxy({ target, seed: seed + i })))),
      );
      await pool.start((i) => ({
        url: (proxies[i] as FaultProxy).url,
        prefix,
        clients: CLIENTS_PER_PROCESS,
        rules: RULES,
        batch: i === PROCESSES - 1, // one process goes through the micro-batching path
        sharedClients: SHARED_CLIENTS,
        changeClients: CHANGE_CLIENTS,
        shared: SHARED,
        changes: CHANGES,
      }));

      const check = (round: number, algorithm: Algorithm, stats: AlgoStats[]) => {
        const rule = RULES[algorithm];
        const sum = (f: (s: AlgoStats) => number) => stats.reduce((n, s) => n + f(s), 0);
        const allowed = sum((s) => s.allowed);
        const rejected = sum((s) => s.rejected);
        const errors = sum((s) => s.errors);
        const firstSend = Math.min(...stats.map((s) => s.firstSend));
        const lastSend = Math.max(...stats.map((s) => s.lastSend));
        const firstReply = Math.min(...stats.map((s) => s.firstReply));
        const lastReply = Math.max(...stats.map((s) => s.lastReply));
        counts.calls += allowed + rejected + errors;
        counts.allowed += allowed;
        counts.errors += errors;
        let lo: number;
        let hi: number;
        if (algorithm === "fixed-window" || algorithm === "sliding-window") {
          hi = rule.limit;
          lo = rule.limit;
          if (
            algorithm === "sliding-window" &&
            Math.floor(firstSend / WINDOW_MS) !== Math.floor(lastReply / WINDOW_MS)
          ) {
            // The round straddles an aligned window edge: the bound is the documented 2 × limit, no exactness.
            counts.straddled++;
            hi = 2 * rule.limit;
            lo = 0;
          }
        } else {
          const burst = rule.burst ?? rule.limit;
          const perMs = rule.limit / rule.windowMs;
          hi = burst + Math.ceil(perMs * Math.max(0, lastReply - firstSend)) + 1;
          lo = burst + Math.floor(perMs * Math.max(0, lastSend - firstReply)) - 1;
        }
        const demand = allowed + rejected + errors;
        const exact = errors === 0 && rejected > 0;
        if (exact) counts.exactRounds++;
        if (allowed > hi) {
          violations.add(
            "over-admitted",
            `round ${round} ${algorithm}: admitted ${allowed} > bound ${hi} (demand ${demand})`,
          );
        } else if (exact && allowed < lo) {
          violations.add(
            "under-admitted",
            `round ${round} ${algorithm}: admitted ${allowed} < ${lo} although ${rejected} calls were rejected`,
          );
        }
        const w = worst[algorithm];
        const score = (x: number, bounds: [number, number]) => x / Math.max(1, bounds[1]);
        if (w === undefined || score(allowed, [lo, hi]) > score(w.admitted, w.bounds)) {
          worst[algorithm] = { round, admitted: allowed, bounds: [lo, hi], demand };
        }
      };

      /** The shared key: each limiter's rules hold their own bound (and exactly when saturated without errors). */
      const checkShared = (round: number, list: Array<Record<keyof typeof SHARED, CountStats>>) => {
        const sum = (k: keyof typeof SHARED, f: keyof CountStats) => list.reduce((n, s) => n + s[k][f], 0);
        const errors = sum("login", "errors") + sum("v1", "errors") + sum("v2", "errors");
        const login = sum("login", "allowed");
        const v2 = sum("v2", "allowed");
        const api = sum("v1", "allowed") + v2;
        counts.calls +=
          errors + (["login", "v1", "v2"] as const).reduce((n, k) => n + sum(k, "allowed") + sum(k, "rejected"), 0);
        counts.allowed += login + api;
        counts.errors += errors;
        const over = (what: string, got: number, bound: number) =>
          violations.add("over-admitted", `round ${round} shared key, ${what}: admitted ${got} > bound ${bound}`);
        if (login > LOGIN) over("login limiter", login, LOGIN);
        if (v2 > EXTRA) over("v2's extra rule", v2, EXTRA);
        if (api > API) over("API rule (v1 + v2)", api, API);
        if (errors === 0) {
          let exact = false;
          if (sum("login", "rejected") > 0) {
            exact = true;
            if (login < LOGIN) {
              violations.add(
                "under-admitted",
                `round ${round} shared key: login admitted ${login} < ${LOGIN} with rejections`,
              );
            }
          }
          if (sum("v1", "rejected") > 0) {
            exact = true;
            if (api < API) {
              violations.add(
                "under-admitted",
                `round ${round} shared key: API admitted ${api} < ${API} with rejections`,
              );
            }
          }
          if (exact) counts.sharedExactRounds++;
        }
      };

      /** The rule-change key: after the old rules' last call, nothing passes before a rejection's retryAfterMs. */
      const checkChange = (round: number, list: ChangeStats[]) => {
        const lastBefore = Math.max(0, ...list.map((c) => c.lastBeforeReply));
        const rejections = list
          .flatMap((c) => c.rejections)
          .filter(([sent]) => sent > lastBefore)
          .sort((a, b) => a[1] - b[1]);
        const admissions = list.flatMap((c) => c.admissions).filter(([sent]) => sent > lastBefore);
        counts.changeRejectionsChecked += rejections.length;
        if (rejections.length > 0) counts.changeRoundsChecked++;
        for (const [sent, replied] of admissions) {
          // the rejection with the latest promise among those answered before this call was sent
          let promise = 0;
          let by: [number, number, number] | undefined;
          for (const r of rejections) {
            if (r[1] >= sent) break;
            if (r[0] + r[2] > promise) {
              promise = r[0] + r[2];
              by = r;
            }
          }
          if (by !== undefined && replied < promise) {
            violations.add(
              "rule-change-handed-back",
              `round ${round} rule change ${JSON.stringify(CHANGES[round % CHANGES.length])}: a call sent at ${sent} ` +
                `was admitted by ${replied}, though a rejection sent at ${by[0]} said retryAfterMs ${by[2]}`,
            );
            return;
          }
        }
      };

      // No abort signal: runSchedule adds one abort listener per step, which trips Node's listener-leak warning.
      const faults = runSchedule(schedule, { servers: [server], proxies });
      const until_ = performance.now() + durationMs;
      for (let round = 0; round < MIN_ROUNDS || performance.now() < until_; round++) {
        const startAt = Date.now() + 50;
        const keys = {
          ...Object.fromEntries((Object.keys(RULES) as Algorithm[]).map((a) => [a, `chaos-${a}-${seed}-${round}`])),
          shared: `chaos-shared-${seed}-${round}`,
          change: `chaos-change-${seed}-${round}`,
        };
        for (const w of pool.all) {
          w.send({ type: "round", round, keys, startAt, endAt: startAt + ROUND_MS, switchAt: startAt + SWITCH_MS });
        }
        const done = await tryWaitUntil(() => (reports.get(round)?.length ?? 0) >= PROCESSES, ROUND_MS + 30_000);
        if (!done) {
          violations.add("round-timeout", `round ${round}: only ${reports.get(round)?.length ?? 0} processes reported`);
          break;
        }
        counts.rounds++;
        const list = reports.get(round) ?? [];
        for (const algorithm of Object.keys(RULES) as Algorithm[]) {
          check(
            round,
            algorithm,
            list.map((r) => r[algorithm]),
          );
        }
        const extra = extraReports.get(round) ?? [];
        checkShared(
          round,
          extra.map((e) => e.shared),
        );
        checkChange(
          round,
          extra.map((e) => e.change),
        );
      }
      const faultLog = await faults;
      await pool.stop();
      return scenarioResult(started, violations, {
        scenario: "ratelimit",
        operations: counts.calls,
        faultsInjected: faultLog.injected,
        seed,
        details: {
          ...counts,
          worstWindow: worst,
          rules: RULES,
          shared: SHARED,
          changes: CHANGES,
          processes: PROCESSES,
          clientsPerProcess: CLIENTS_PER_PROCESS,
          roundMs: ROUND_MS,
          faultsByKind: faultLog.byKind,
          durationMs,
        },
      });
    } finally {
      await pool.stop(0);
      await Promise.all(proxies.map((p) => p.close()));
      await server?.stop();
    }
  },
};
