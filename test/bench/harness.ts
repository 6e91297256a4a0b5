// The benchmark run, in parts (the scenarios marked `isolated` apart): each part starts its servers, sets its
// scenarios up, runs the phases (phases.ts) over them and tears down; then the report is assembled. The modules the runner, the test and the README generator use are
// re-exported from here.
import { cpus, loadavg, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import { type RedisServer, startRedis, startRedisGroup, withDeadline } from "@coordis/testing";
import { Redis, type RedisOptions } from "ioredis";
import { Counter } from "./measure.js";
import type { BenchOptions } from "./options.js";
import { countRoundTrips, measureMemory, measureRound, type RunContext, warmUp } from "./phases.js";
import { aggregate, type BenchReport, type Live, message, type RoundTripViolation, round3 } from "./results.js";
import { allScenarios } from "./scenarios/index.js";
import { reportLeftovers, serverSampler } from "./server-stats.js";
import { type Scenario, type SetupContext, Unavailable } from "./types.js";

export { type BenchOptions, DEFAULT_OPTIONS, parseArgs, SMOKE_OPTIONS, USAGE } from "./options.js";
export {
  type BenchReport,
  FLOOR_ID,
  type RoundResult,
  type RoundTripViolation,
  type ScenarioResult,
} from "./results.js";

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

/** A scenario's result before anything ran. */
function start(scenario: Scenario): Live {
  return {
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
  };
}

/** A client of the bench's own (closed at the end of the run). */
function client(clients: Redis[], server: RedisServer, redisOptions: RedisOptions = {}): Redis {
  const c = new Redis(server.port, server.host, redisOptions);
  c.on("error", () => {});
  clients.push(c);
  return c;
}

/** Sets up every scenario (untimed); one that is not available yet is marked so, one that fails is marked failed. */
async function setUp(
  ctx: RunContext,
  live: readonly Live[],
  servers: { single: RedisServer; group: readonly RedisServer[] },
  clients: Redis[],
): Promise<void> {
  const sharedValues = new Map<string, Promise<unknown>>();
  for (const l of live) {
    const setup: SetupContext = {
      ...servers,
      prefix: `b.${l.scenario.id.replace(/[^A-Za-z0-9-]/g, ".")}`,
      populate: ctx.options.populate,
      smoke: ctx.options.smoke,
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
      client: (server: RedisServer = servers.single, redisOptions: RedisOptions = {}) =>
        client(clients, server, redisOptions),
    };
    try {
      ctx.log(`  set up ${l.scenario.id}`);
      l.instance = await withDeadline(l.scenario.setup(setup), 60_000, "setup");
    } catch (err) {
      if (err instanceof Unavailable) {
        l.result.status = "unavailable";
        l.result.note = `not available yet: ${err.message}`;
        ctx.log(`  skip ${l.scenario.id}: ${l.result.note}`);
      } else {
        ctx.fail(l, `setup: ${message(err)}`);
      }
    }
  }
}

/**
 * One part of the run: starts its own redis-server (and 3 masters when a Redlock scenario is in it), sets up the
 * part's scenarios, warms up, runs interleaved rounds (closed loop, then sequential), counts round trips, measures
 * memory per entity, and stops everything. Never throws for a scenario's failure: it is reported. Returns Redis'
 * version.
 */
async function runPart(options: BenchOptions, live: Live[], log: (line: string) => void): Promise<string> {
  const needsGroup = live.some((l) => l.scenario.topology === "group3");
  const clients: Redis[] = [];
  const servers: { single?: RedisServer; group?: { servers: readonly RedisServer[]; stop(): Promise<void> } } = {};
  const fail = (l: Live, error: string) => {
    if (l.result.status === "failed") return;
    l.result.status = "failed";
    l.result.error = error;
    log(`  FAILED ${l.scenario.id}: ${error}`);
  };
  const active = () => live.filter((l) => l.result.status === "ok" && l.instance !== undefined);
  let redisVersion = "unknown";

  try {
    const [single, group] = await Promise.all([startRedis(), needsGroup ? startRedisGroup(3) : undefined]);
    servers.single = single;
    if (group !== undefined) servers.group = group;
    const admin = client(clients, single);
    redisVersion = /redis_version:(\S+)/.exec((await admin.info("server")) as string)?.[1] ?? "unknown";
    const groupAdmins = (group?.servers ?? []).map((server) => client(clients, server));
    const sampler = serverSampler(admin, groupAdmins);
    const ctx: RunContext = { options, counter: new Counter(), sampler, log, fail };
    log(
      `bench: ${live.length} scenarios, ${options.rounds} round(s) of ${options.durationMs} ms + ` +
        `${options.sequentialMs} ms sequential, ${options.concurrency} in flight; redis ${redisVersion}`,
    );
    await setUp(ctx, live, { single, group: group?.servers ?? [] }, clients);
    if (options.warmupMs > 0) {
      log(`warm-up (${options.warmupMs} ms each)`);
      for (const l of active()) await warmUp(ctx, l);
    }
    // Interleaved rounds: A1 B1 C1 ... A2 B2 C2 ...
    for (let round = 1; round <= options.rounds; round++) {
      log(`round ${round}/${options.rounds}`);
      for (const l of active()) await measureRound(ctx, l, round);
    }
    log(`round trips (${options.roundTripOps} ops each)`);
    for (const l of active()) {
      if (!options.countAllRoundTrips && l.scenario.roundTrips === undefined) continue;
      await countRoundTrips(ctx, l, l.scenario.topology === "group3" ? (group?.servers ?? []) : single);
    }
    if (options.memoryEntities > 0) {
      const withMemory = active().filter((l) => l.scenario.memoryEntity !== undefined && l.instance?.entity);
      if (withMemory.length > 0) log(`memory (${options.memoryEntities} entities each)`);
      for (const l of withMemory) await measureMemory(ctx, l, admin);
    }
  } finally {
    for (const l of live) {
      try {
        await withDeadline(Promise.resolve(l.instance?.teardown?.()), 15_000, "teardown");
      } catch (err) {
        log(`  teardown ${l.scenario.id}: ${message(err)}`);
      }
    }
    for (const c of clients) c.disconnect();
    if (servers.single !== undefined) await reportLeftovers(servers.single, log);
    await Promise.all([servers.single?.stop(), servers.group?.stop()]);
  }
  return redisVersion;
}

/**
 * Runs the benchmark: the selected scenarios in parts (see {@link runPart}): those without `isolated` together,
 * then each isolated name on its own. Never throws for a scenario's failure: it is reported.
 */
export async function runBench(options: BenchOptions, scenarios: Scenario[] = allScenarios()): Promise<BenchReport> {
  const started = performance.now();
  const sink = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const log = (line: string) => sink(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  const loadAverageStart = loadavg();
  const selected = select(scenarios, options.filter);
  const live = selected.map(start);
  // The scenarios without `isolated` form the first part; each isolated name is a part of its own, run after it.
  const parts = new Map<string, Live[]>();
  for (const l of live) {
    const name = l.scenario.isolated ?? "";
    const part = parts.get(name);
    if (part === undefined) parts.set(name, [l]);
    else part.push(l);
  }
  let redisVersion: string | undefined;
  // Map order is first appearance; the shared part goes first whatever the scenario list's order.
  for (const [name, part] of [...parts].sort(([a], [b]) => Number(a !== "") - Number(b !== ""))) {
    if (name !== "") log(`part of its own: ${name} (${part.length} scenarios, fresh Redis servers)`);
    const version = await runPart(options, part, log);
    redisVersion ??= version;
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
    versions: { node: process.version, redis: redisVersion ?? "unknown", ioredis: await ioredisVersion() },
    options: { ...rest, ...(filter === undefined ? {} : { filter: filter.source }) },
    scenarios: live.map((l) => l.result),
    roundTripViolations: violations,
  };
}
