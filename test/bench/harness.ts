import { cpus, loadavg, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import { countCommands, type RedisServer, startRedis, startRedisGroup } from "@coordis/testing";
import { Redis, type RedisOptions } from "ioredis";
import { Counter, closedLoop, median, percentiles, sequential } from "./measure.js";
import { allScenarios } from "./scenarios/index.js";
import { populate } from "./scenarios/populate.js";
import {
  type LatencyResult,
  type Scenario,
  type ScenarioInstance,
  type SetupContext,
  type ThroughputResult,
  Unavailable,
} from "./types.js";

/** The raw EVALSHA floor every row is also compared to. */
export const FLOOR_ID = "floor/raw-evalsha";

/** How a run is shaped. */
export interface BenchOptions {
  /** Only scenarios whose id matches (their baselines are added so ratios still work). */
  filter?: RegExp | undefined;
  /** Closed-loop window per scenario per round, ms. */
  durationMs: number;
  /** Sequential (one caller) window per scenario per round, ms. */
  sequentialMs: number;
  /** Interleaved rounds. */
  rounds: number;
  /** Closed-loop warm-up per scenario before round 1, ms. */
  warmupMs: number;
  /** Calls in flight in the closed loop. */
  concurrency: number;
  /** Operations run one by one while counting round trips. */
  roundTripOps: number;
  /** Count round trips of every scenario (false: only those that declare a figure, as the smoke run does). */
  countAllRoundTrips: boolean;
  /** Entities created for memory per entity (0 skips the memory phase). */
  memoryEntities: number;
  /** Entities pre-populated for read scenarios (leaderboard members, cache keys). */
  populate: number;
  /** Smoke mode (reported in the JSON). */
  smoke: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/** Defaults: a full run of every scenario stays under 5 minutes on a 2-core machine. */
export const DEFAULT_OPTIONS: BenchOptions = {
  durationMs: 1_000,
  sequentialMs: 500,
  rounds: 3,
  warmupMs: 300,
  concurrency: 50,
  roundTripOps: 200,
  countAllRoundTrips: true,
  memoryEntities: 10_000,
  populate: 10_000,
  smoke: false,
};

/** `--smoke`: every scenario for about 100 ms, one round. */
export const SMOKE_OPTIONS: BenchOptions = {
  durationMs: 100,
  sequentialMs: 50,
  rounds: 1,
  warmupMs: 30,
  concurrency: 50,
  roundTripOps: 20,
  countAllRoundTrips: false,
  memoryEntities: 0,
  populate: 200,
  smoke: true,
};

/** Parses `--filter <regex> --duration <ms> --rounds <n> --smoke` (and `--warmup`, `--concurrency`). */
export function parseArgs(argv: readonly string[]): BenchOptions {
  const smoke = argv.includes("--smoke");
  const options: BenchOptions = { ...(smoke ? SMOKE_OPTIONS : DEFAULT_OPTIONS) };
  let durationGiven = false;
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value`);
    return v;
  };
  const int = (i: number, flag: string, min: number): number => {
    const v = Number(value(i, flag));
    if (!Number.isInteger(v) || v < min) throw new Error(`${flag} must be an integer >= ${min}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case "--smoke":
        break;
      case "--filter":
        options.filter = new RegExp(value(i, arg));
        i++;
        break;
      case "--duration":
        options.durationMs = int(i, arg, 10);
        durationGiven = true;
        i++;
        break;
      case "--rounds":
        options.rounds = int(i, arg, 1);
        i++;
        break;
      case "--warmup":
        options.warmupMs = int(i, arg, 0);
        i++;
        break;
      case "--concurrency":
        options.concurrency = int(i, arg, 1);
        i++;
        break;
      case "--help":
      case "-h":
        throw new Error(USAGE);
      default:
        throw new Error(`unknown argument ${arg}\n${USAGE}`);
    }
  }
  if (durationGiven) options.sequentialMs = Math.max(10, Math.round(options.durationMs / 2));
  return options;
}

/** Command-line help. */
export const USAGE = `usage: npm run bench -- [--filter <regex>] [--duration <ms per round>] [--rounds <n>] [--smoke]
  --filter <regex>    run scenarios whose id matches (e.g. "lock/", "coordis"); their raw baselines run too
  --duration <ms>     closed-loop window per scenario per round (default 1000; sequential gets half)
  --rounds <n>        interleaved rounds (default 3); figures are medians over rounds
  --warmup <ms>       warm-up per scenario before round 1 (default 300)
  --concurrency <n>   calls in flight in the closed loop (default 50)
  --smoke             tiny durations, one round (what the test suite runs)`;

/** One round of one scenario. */
export interface RoundResult {
  readonly round: number;
  readonly ops: number;
  readonly elapsedMs: number;
  readonly opsPerSec: number;
  readonly sequentialOps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Latency percentiles of the calls completed inside the closed-loop window (at `concurrency` in flight), ms. */
  readonly inFlightP50Ms?: number;
  readonly inFlightP99Ms?: number;
  /** Node process CPU (user + system, `process.cpuUsage`) over the closed loop ÷ operations completed, µs. */
  readonly clientCpuUsPerOp?: number;
  /** Redis CPU (INFO used_cpu_user + used_cpu_sys, summed over the scenario's servers) over the closed loop ÷ operations, µs. */
  readonly redisCpuUsPerOp?: number;
  /**
   * Time Redis spent running scripts (INFO commandstats `usec` of EVALSHA + EVAL, summed over the scenario's servers)
   * over the closed loop ÷ operations, µs: the scripts' own work, without parsing, networking or event-loop costs.
   * Absent when the row ran no script.
   */
  readonly scriptUsPerOp?: number;
}

/** Everything measured for one scenario. */
export interface ScenarioResult {
  readonly id: string;
  readonly group: string;
  readonly name: string;
  readonly kind: Scenario["kind"];
  readonly topology: Scenario["topology"];
  readonly unit: string;
  readonly baseline?: string;
  readonly reference?: string;
  /** `unavailable`: the code under test does not exist yet (not an error). */
  status: "ok" | "failed" | "unavailable";
  /** Why it is unavailable. */
  note?: string;
  /** First error when failed. */
  error?: string;
  readonly rounds: RoundResult[];
  /** Median over rounds of the closed-loop throughput. */
  opsPerSec?: number;
  /** Median over rounds of the sequential p50 / p99, ms. */
  p50Ms?: number;
  p99Ms?: number;
  /** Median over rounds of the closed loop's p50 / p99 (at `concurrency` in flight), ms. */
  inFlightP50Ms?: number;
  inFlightP99Ms?: number;
  /** Median over rounds of client (Node) and Redis CPU per operation in the closed loop, µs. */
  clientCpuUsPerOp?: number;
  redisCpuUsPerOp?: number;
  /** Median over rounds of the time inside scripts per operation (see {@link RoundResult.scriptUsPerOp}), µs. */
  scriptUsPerOp?: number;
  /** Median over rounds of ops/s ÷ the baseline's ops/s in the same round. */
  ratio?: number;
  /** Median over rounds of p50 ÷ the baseline's p50 in the same round (lower is better). */
  p50Ratio?: number;
  /** Median over rounds of ops/s ÷ the reference row's ops/s in the same round. */
  refRatio?: number;
  /** Median over rounds of ops/s ÷ the raw EVALSHA floor's ops/s in the same round. */
  floorRatio?: number;
  roundTrips?: {
    readonly ops: number;
    readonly roundTrips: number;
    readonly perOp: number;
    readonly declared?: number;
    /** How `declared` is checked: `exact` or `at-most` (a ceiling: micro-batched rows). */
    readonly bound?: "exact" | "at-most";
    /** Callers in flight while counting (1, or the closed loop's concurrency for micro-batched rows). */
    readonly concurrency: number;
    readonly note?: string;
    readonly sent: Readonly<Record<string, number>>;
  };
  memory?: { readonly entity: string; readonly count: number; readonly bytes: number; readonly bytesPerEntity: number };
}

/** A round-trip declaration a Coordis scenario broke. */
export interface RoundTripViolation {
  readonly id: string;
  readonly declared: number;
  readonly measured: number;
}

/** The whole run: what `latest.json` holds. */
export interface BenchReport {
  readonly date: string;
  readonly durationSec: number;
  readonly machine: {
    readonly cpuModel: string;
    readonly cpuCount: number;
    readonly totalMemoryMB: number;
    readonly platform: string;
    readonly arch: string;
    readonly loadAverageStart: number[];
    readonly loadAverageEnd: number[];
  };
  readonly versions: { readonly node: string; readonly redis: string; readonly ioredis: string };
  readonly options: Omit<BenchOptions, "filter" | "log"> & { filter?: string };
  readonly scenarios: ScenarioResult[];
  readonly roundTripViolations: RoundTripViolation[];
}

interface Live {
  readonly scenario: Scenario;
  readonly result: ScenarioResult;
  instance?: ScenarioInstance;
  /** Per round: throughput and p50, for the ratios. */
  readonly perRound: Map<number, { opsPerSec: number; p50Ms: number }>;
}

/** Rejects when `promise` has not settled within `ms` (the scenario is then reported as failed; the run goes on). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Retries a round-trip count that failed because ioredis' MONITOR connection saw a monitored line while it still
 * waited for its own ready-check reply ("Command queue state error"): a race in setting up MONITOR, not a result.
 */
async function withRetry<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || !(err instanceof Error) || !err.message.includes("Command queue state error")) throw err;
    }
  }
}

function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function select(scenarios: Scenario[], filter: RegExp | undefined): Scenario[] {
  if (filter === undefined) return scenarios;
  const wanted = new Set(scenarios.filter((s) => filter.test(s.id)).map((s) => s.id));
  for (const s of scenarios) if (wanted.has(s.id) && s.baseline !== undefined) wanted.add(s.baseline);
  return scenarios.filter((s) => wanted.has(s.id));
}

async function ioredisVersion(): Promise<string> {
  try {
    const { createRequire } = await import("node:module");
    const require = createRequire(import.meta.url);
    return (require("ioredis/package.json") as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/**
 * Runs the benchmark: starts its own redis-server (and 3 masters when a Redlock scenario is selected), sets up
 * every selected scenario, warms up, runs interleaved rounds (closed loop, then sequential), counts round trips,
 * measures memory per entity, and stops everything. Never throws for a scenario's failure: it is reported.
 */
export async function runBench(options: BenchOptions, scenarios: Scenario[] = allScenarios()): Promise<BenchReport> {
  const started = performance.now();
  const sink = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const log = (line: string) => sink(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  const loadAverageStart = loadavg();
  const selected = select(scenarios, options.filter);
  const needsGroup = selected.some((s) => s.topology === "group3");
  const clients: Redis[] = [];
  const servers: { single?: RedisServer; group?: { servers: readonly RedisServer[]; stop(): Promise<void> } } = {};
  const live: Live[] = selected.map((scenario) => ({
    scenario,
    result: {
      id: scenario.id,
      group: scenario.group,
      name: scenario.name,
      kind: scenario.kind,
      topology: scenario.topology,
      unit: scenario.unit ?? "ops",
      ...(scenario.baseline === undefined ? {} : { baseline: scenario.baseline }),
      ...(scenario.reference === undefined ? {} : { reference: scenario.reference }),
      status: "ok",
      rounds: [],
    },
    perRound: new Map(),
  }));
  const fail = (l: Live, error: string) => {
    if (l.result.status === "failed") return;
    l.result.status = "failed";
    l.result.error = error;
    log(`  FAILED ${l.scenario.id}: ${error}`);
  };
  const active = () => live.filter((l) => l.result.status === "ok" && l.instance !== undefined);
  const counter = new Counter();
  let redisVersion = "unknown";

  try {
    const [single, group] = await Promise.all([startRedis(), needsGroup ? startRedisGroup(3) : undefined]);
    servers.single = single;
    if (group !== undefined) servers.group = group;
    const admin = new Redis(single.port, single.host);
    admin.on("error", () => {});
    clients.push(admin);
    redisVersion = /redis_version:(\S+)/.exec((await admin.info("server")) as string)?.[1] ?? "unknown";
    const groupAdmins = (group?.servers ?? []).map((server) => {
      const c = new Redis(server.port, server.host);
      c.on("error", () => {});
      clients.push(c);
      return c;
    });
    /** Redis CPU seconds (user + system) of the servers a scenario runs on. */
    const redisCpu = async (l: Live): Promise<number> => {
      const targets = l.scenario.topology === "group3" ? groupAdmins : [admin];
      const values = await Promise.all(targets.map(usedCpuSeconds));
      return values.reduce((a, b) => a + b, 0);
    };
    /** µs Redis spent inside scripts (EVALSHA + EVAL) on the servers a scenario runs on. */
    const scriptUsec = async (l: Live): Promise<number> => {
      const targets = l.scenario.topology === "group3" ? groupAdmins : [admin];
      const values = await Promise.all(targets.map(scriptMicroseconds));
      return values.reduce((a, b) => a + b, 0);
    };
    log(
      `bench: ${selected.length} scenarios, ${options.rounds} round(s) of ${options.durationMs} ms + ` +
        `${options.sequentialMs} ms sequential, ${options.concurrency} in flight; redis ${redisVersion}`,
    );

    // Set-up (untimed).
    const sharedValues = new Map<string, Promise<unknown>>();
    for (const l of live) {
      const ctx: SetupContext = {
        single,
        group: group?.servers ?? [],
        prefix: `b.${l.scenario.id.replace(/[^A-Za-z0-9-]/g, ".")}`,
        populate: options.populate,
        smoke: options.smoke,
        sharedPrefix: "b.shared",
        shared<T>(key: string, build: () => Promise<T>): Promise<T> {
          let value = sharedValues.get(key);
          if (value === undefined) {
            value = build();
            // A failed build is retried by the next scenario asking (and fails that one too, with its own error).
            value.catch(() => sharedValues.delete(key));
            sharedValues.set(key, value);
          }
          return value as Promise<T>;
        },
        client(server: RedisServer = single, redisOptions: RedisOptions = {}) {
          const client = new Redis(server.port, server.host, redisOptions);
          client.on("error", () => {});
          clients.push(client);
          return client;
        },
      };
      try {
        log(`  set up ${l.scenario.id}`);
        l.instance = await withTimeout(l.scenario.setup(ctx), 60_000, "setup");
      } catch (err) {
        if (err instanceof Unavailable) {
          l.result.status = "unavailable";
          l.result.note = `not available yet: ${err.message}`;
          log(`  skip ${l.scenario.id}: ${l.result.note}`);
        } else {
          fail(l, `setup: ${message(err)}`);
        }
      }
    }

    const throughput = (inst: ScenarioInstance, ms: number): Promise<ThroughputResult> => {
      if (inst.throughput !== undefined) return inst.throughput(ms, options.concurrency);
      if (inst.op !== undefined) return closedLoop(inst.op.bind(inst), ms, options.concurrency, counter);
      throw new Error("scenario has neither op nor throughput");
    };
    const latency = (inst: ScenarioInstance, ms: number): Promise<LatencyResult> => {
      if (inst.latency !== undefined) return inst.latency(ms);
      if (inst.op !== undefined) return sequential(inst.op.bind(inst), ms, counter);
      throw new Error("scenario has neither op nor latency");
    };

    // Warm-up: JIT, script caches (EVALSHA NOSCRIPT fallbacks), connection set-up.
    if (options.warmupMs > 0) {
      log(`warm-up (${options.warmupMs} ms each)`);
      for (const l of active()) {
        try {
          log(`  warm up ${l.scenario.id}`);
          await l.instance?.reset?.();
          const t = await withTimeout(
            throughput(l.instance as ScenarioInstance, options.warmupMs),
            grace(options.warmupMs),
            "warm-up",
          );
          if (t.error !== undefined) fail(l, `warm-up: ${t.error}`);
        } catch (err) {
          fail(l, `warm-up: ${message(err)}`);
        }
      }
    }

    // Interleaved rounds: A1 B1 C1 ... A2 B2 C2 ...
    for (let round = 1; round <= options.rounds; round++) {
      log(`round ${round}/${options.rounds}`);
      for (const l of active()) {
        const inst = l.instance as ScenarioInstance;
        try {
          await inst.reset?.();
          const [redisCpuBefore, scriptUsecBefore] = await Promise.all([redisCpu(l), scriptUsec(l)]);
          const clientCpuBefore = process.cpuUsage();
          const t = await withTimeout(throughput(inst, options.durationMs), grace(options.durationMs), "closed loop");
          const clientCpu = process.cpuUsage(clientCpuBefore);
          const [redisCpuAfter, scriptUsecAfter] = await Promise.all([redisCpu(l), scriptUsec(l)]);
          const redisCpuSec = redisCpuAfter - redisCpuBefore;
          const scriptUs = scriptUsecAfter - scriptUsecBefore;
          if (t.error !== undefined) {
            fail(l, t.error);
            continue;
          }
          const cpuOps = t.completed ?? t.ops;
          const [inFlightP50, inFlightP99] = percentiles(t.samplesMs ?? [], [50, 99]);
          await inst.reset?.();
          const s = await withTimeout(
            latency(inst, options.sequentialMs),
            grace(options.sequentialMs),
            "sequential run",
          );
          if (s.error !== undefined) {
            fail(l, `sequential: ${s.error}`);
            continue;
          }
          const [p50, p99] = percentiles(s.samplesMs, [50, 99]);
          const r: RoundResult = {
            round,
            ops: t.ops,
            elapsedMs: round3(t.elapsedMs),
            opsPerSec: Math.round((t.ops * 1000) / t.elapsedMs),
            sequentialOps: s.samplesMs.length,
            p50Ms: round3(p50 as number),
            p99Ms: round3(p99 as number),
            ...(t.samplesMs === undefined || t.samplesMs.length === 0
              ? {}
              : { inFlightP50Ms: round3(inFlightP50 as number), inFlightP99Ms: round3(inFlightP99 as number) }),
            ...(cpuOps > 0
              ? {
                  clientCpuUsPerOp: round3((clientCpu.user + clientCpu.system) / cpuOps),
                  redisCpuUsPerOp: round3((redisCpuSec * 1e6) / cpuOps),
                  ...(scriptUs > 0 ? { scriptUsPerOp: round3(scriptUs / cpuOps) } : {}),
                }
              : {}),
          };
          l.result.rounds.push(r);
          l.perRound.set(round, { opsPerSec: r.opsPerSec, p50Ms: r.p50Ms });
          log(
            `  ${l.scenario.id}: ${r.opsPerSec} ${l.result.unit}/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms; ` +
              `${options.concurrency} in flight p99 ${r.inFlightP99Ms ?? "—"} ms; CPU µs/op client ` +
              `${r.clientCpuUsPerOp ?? "—"}, redis ${r.redisCpuUsPerOp ?? "—"}`,
          );
        } catch (err) {
          fail(l, message(err));
        }
      }
    }

    // Round trips per operation: MONITOR over a short separate run, one operation at a time (micro-batched rows:
    // the closed loop's callers in flight, where calls share script calls).
    log(`round trips (${options.roundTripOps} ops each)`);
    for (const l of active()) {
      if (!options.countAllRoundTrips && l.scenario.roundTrips === undefined) continue;
      const inst = l.instance as ScenarioInstance;
      const target = l.scenario.topology === "group3" ? (group?.servers ?? []) : single;
      try {
        await inst.reset?.();
        const n = options.roundTripOps;
        const inFlight = l.scenario.roundTripConcurrency === "closed-loop" ? Math.min(options.concurrency, n) : 1;
        const counts = await withRetry(() =>
          withTimeout(
            countCommands(target, async () => {
              if (inst.countOps !== undefined) await inst.countOps(n);
              else if (inst.op !== undefined) await countLoop(inst.op.bind(inst), n, inFlight, counter);
            }),
            60_000,
            "round-trip count",
          ),
        );
        l.result.roundTrips = {
          ops: n,
          roundTrips: counts.roundTrips,
          perOp: round3(counts.roundTrips / n),
          ...(l.scenario.roundTrips === undefined
            ? {}
            : { declared: l.scenario.roundTrips, bound: l.scenario.roundTripsBound ?? "exact" }),
          concurrency: inFlight,
          ...(l.scenario.roundTripsNote === undefined ? {} : { note: l.scenario.roundTripsNote }),
          sent: counts.sent,
        };
      } catch (err) {
        fail(l, `round-trip count: ${message(err)}`);
      }
    }

    // Memory per entity: INFO used_memory delta over a fresh set of entities, each scenario on an emptied database.
    if (options.memoryEntities > 0) {
      const withMemory = active().filter((l) => l.scenario.memoryEntity !== undefined && l.instance?.entity);
      if (withMemory.length > 0) log(`memory (${options.memoryEntities} entities each)`);
      for (const l of withMemory) {
        const entity = l.instance?.entity?.bind(l.instance) as (j: number) => Promise<unknown>;
        try {
          // From an empty database: keys of earlier scenarios expiring meanwhile would otherwise skew the delta.
          // Every round and count is done by now, and entities use fresh names, so nothing needs the old data.
          await admin.flushall("SYNC");
          const before = await usedMemory(admin);
          await withTimeout(populate(options.memoryEntities, entity, 10), 60_000, "memory run");
          const bytes = (await usedMemory(admin)) - before;
          l.result.memory = {
            entity: l.scenario.memoryEntity as string,
            count: options.memoryEntities,
            bytes,
            bytesPerEntity: Math.round(bytes / options.memoryEntities),
          };
        } catch (err) {
          fail(l, `memory: ${message(err)}`);
        }
      }
    }
  } finally {
    for (const l of live) {
      try {
        await withTimeout(Promise.resolve(l.instance?.teardown?.()), 15_000, "teardown");
      } catch (err) {
        log(`  teardown ${l.scenario.id}: ${message(err)}`);
      }
    }
    for (const c of clients) c.disconnect();
    if (servers.single !== undefined) await reportLeftovers(servers.single, log);
    await Promise.all([servers.single?.stop(), servers.group?.stop()]);
  }

  aggregate(live);
  const violations: RoundTripViolation[] = [];
  for (const { scenario, result } of live) {
    const rt = result.roundTrips;
    if (scenario.kind === "coordis" && rt?.declared !== undefined && rt.perOp > rt.declared) {
      violations.push({ id: scenario.id, declared: rt.declared, measured: rt.perOp });
    }
  }
  const cpuList = cpus();
  const { filter, log: _log, ...rest } = options;
  return {
    date: new Date().toISOString(),
    durationSec: round3((performance.now() - started) / 1000),
    machine: {
      cpuModel: cpuList[0]?.model ?? "unknown",
      cpuCount: cpuList.length,
      totalMemoryMB: Math.round(totalmem() / 2 ** 20),
      platform: process.platform,
      arch: process.arch,
      loadAverageStart: loadAverageStart.map(round3),
      loadAverageEnd: loadavg().map(round3),
    },
    versions: { node: process.version, redis: redisVersion, ioredis: await ioredisVersion() },
    options: { ...rest, ...(filter === undefined ? {} : { filter: filter.source }) },
    scenarios: live.map((l) => l.result),
    roundTripViolations: violations,
  };
}

/**
 * Logs connections still open on `server` after every scenario was torn down and every harness client closed: a
 * library that leaves a client behind would otherwise show up only as reconnect errors once the server is gone.
 */
async function reportLeftovers(server: RedisServer, log: (line: string) => void): Promise<void> {
  const probe = new Redis(server.port, server.host, { lazyConnect: true });
  probe.on("error", () => {});
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    await withTimeout(probe.connect(), 5_000, "connect");
    const id = String(await probe.client("ID"));
    const list = String(await withTimeout(probe.client("LIST"), 5_000, "CLIENT LIST"));
    const others = list
      .split("\n")
      .map((line) =>
        Object.fromEntries(
          line
            .trim()
            .split(" ")
            .map((kv) => kv.split("=", 2) as [string, string]),
        ),
      )
      .filter((c) => c.id !== undefined && c.id !== id);
    if (others.length > 0) {
      const what = others.map((c) => `name=${c.name || "-"} cmd=${c.cmd} age=${c.age}s`).join("; ");
      log(`note: ${others.length} connection(s) still open after teardown (left by a library?): ${what}`);
    }
  } catch (err) {
    log(`note: could not list leftover connections: ${message(err)}`);
  } finally {
    probe.disconnect();
  }
}

/** Time allowed for a phase of `ms`: the window plus draining the calls in flight and starting/stopping workers. */
function grace(ms: number): number {
  return ms * 3 + 20_000;
}

/** Runs `n` operations with `inFlight` callers, each awaiting one after another (exactly `n` in all). */
async function countLoop(
  op: (n: number) => Promise<unknown>,
  n: number,
  inFlight: number,
  counter: Counter,
): Promise<void> {
  let left = n;
  const caller = async () => {
    while (left > 0) {
      left--;
      await op(counter.next());
    }
  };
  await Promise.all(Array.from({ length: inFlight }, caller));
}

/** INFO commandstats: `usec` of EVALSHA + EVAL, the µs the server spent running scripts (and their commands). */
async function scriptMicroseconds(client: Redis): Promise<number> {
  const info = (await client.info("commandstats")) as string;
  let total = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=\d+,usec=(\d+),/gm)) total += Number(m[1]);
  return total;
}

/** INFO cpu: used_cpu_user + used_cpu_sys of the server, seconds (the whole process, every thread). */
async function usedCpuSeconds(client: Redis): Promise<number> {
  const info = (await client.info("cpu")) as string;
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? Number.NaN);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? Number.NaN);
  return user + sys;
}

async function usedMemory(admin: Redis): Promise<number> {
  const info = (await admin.info("memory")) as string;
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function aggregate(live: Live[]): void {
  const byId = new Map(live.map((l) => [l.scenario.id, l]));
  const ratioTo = (l: Live, otherId: string | undefined, pick: "opsPerSec" | "p50Ms") => {
    const other = otherId === undefined ? undefined : byId.get(otherId);
    if (other === undefined || other === l) return undefined;
    const ratios = [...l.perRound].map(([round, mine]) => {
      const theirs = other.perRound.get(round);
      return theirs === undefined || theirs[pick] <= 0 ? undefined : mine[pick] / theirs[pick];
    });
    const m = median(ratios);
    return m === undefined ? undefined : round3(m);
  };
  for (const l of live) {
    const r = l.result;
    if (r.rounds.length === 0) continue;
    const set = <K extends keyof ScenarioResult>(key: K, value: ScenarioResult[K] | undefined) => {
      if (value !== undefined) r[key] = value;
    };
    set("opsPerSec", median(r.rounds.map((x) => x.opsPerSec)));
    set("p50Ms", median(r.rounds.map((x) => x.p50Ms)));
    set("p99Ms", median(r.rounds.map((x) => x.p99Ms)));
    set("inFlightP50Ms", median(r.rounds.map((x) => x.inFlightP50Ms)));
    set("inFlightP99Ms", median(r.rounds.map((x) => x.inFlightP99Ms)));
    set("clientCpuUsPerOp", median(r.rounds.map((x) => x.clientCpuUsPerOp)));
    set("redisCpuUsPerOp", median(r.rounds.map((x) => x.redisCpuUsPerOp)));
    set("scriptUsPerOp", median(r.rounds.map((x) => x.scriptUsPerOp)));
    set("ratio", ratioTo(l, l.scenario.baseline, "opsPerSec"));
    set("p50Ratio", ratioTo(l, l.scenario.baseline, "p50Ms"));
    set("refRatio", ratioTo(l, l.scenario.reference, "opsPerSec"));
    set("floorRatio", ratioTo(l, FLOOR_ID, "opsPerSec"));
  }
}
