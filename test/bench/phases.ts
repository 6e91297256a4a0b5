// The measurements of one scenario: warm-up, one round (closed loop, then sequential), round trips per operation and
// memory per entity. Each records into the scenario's result, or marks it failed; none throws.
import { countCommands, type RedisServer, withDeadline } from "@coordis/testing";
import type { Redis } from "ioredis";
import { type Counter, closedLoop, percentiles, sequential } from "./measure.js";
import type { BenchOptions } from "./options.js";
import { type Live, message, type RoundResult, round3 } from "./results.js";
import { populate } from "./scenarios/populate.js";
import { type ServerSampler, usedMemory } from "./server-stats.js";
import type { LatencyResult, ScenarioInstance, ThroughputResult } from "./types.js";

/** What the phases of one run share. */
export interface RunContext {
  readonly options: BenchOptions;
  /** Operation numbers handed to scenarios' `op(n)`. */
  readonly counter: Counter;
  readonly sampler: ServerSampler;
  readonly log: (line: string) => void;
  /** Marks the scenario failed with its first error (and logs it). */
  fail(l: Live, error: string): void;
}

/** Time allowed for a phase of `ms`: the window plus draining the calls in flight and starting/stopping workers. */
function grace(ms: number): number {
  return ms * 3 + 20_000;
}

function throughput(ctx: RunContext, inst: ScenarioInstance, ms: number): Promise<ThroughputResult> {
  if (inst.throughput !== undefined) return inst.throughput(ms, ctx.options.concurrency);
  if (inst.op !== undefined) return closedLoop(inst.op.bind(inst), ms, ctx.options.concurrency, ctx.counter);
  throw new Error("scenario has neither op nor throughput");
}

function latency(ctx: RunContext, inst: ScenarioInstance, ms: number): Promise<LatencyResult> {
  if (inst.latency !== undefined) return inst.latency(ms);
  if (inst.op !== undefined) return sequential(inst.op.bind(inst), ms, ctx.counter);
  throw new Error("scenario has neither op nor latency");
}

/** Warm-up: JIT, script caches (EVALSHA NOSCRIPT fallbacks), connection set-up. */
export async function warmUp(ctx: RunContext, l: Live): Promise<void> {
  const { warmupMs } = ctx.options;
  try {
    ctx.log(`  warm up ${l.scenario.id}`);
    await l.instance?.reset?.();
    const t = await withDeadline(throughput(ctx, l.instance as ScenarioInstance, warmupMs), grace(warmupMs), "warm-up");
    if (t.error !== undefined) ctx.fail(l, `warm-up: ${t.error}`);
  } catch (err) {
    ctx.fail(l, `warm-up: ${message(err)}`);
  }
}

/** One round: the closed loop (throughput, in-flight latency, client and Redis CPU), then the sequential run. */
export async function measureRound(ctx: RunContext, l: Live, round: number): Promise<void> {
  const { options, sampler } = ctx;
  const inst = l.instance as ScenarioInstance;
  try {
    await inst.reset?.();
    const [redisCpuBefore, scriptUsecBefore] = await Promise.all([sampler.redisCpu(l), sampler.scriptUsec(l)]);
    const clientCpuBefore = process.cpuUsage();
    const t = await withDeadline(throughput(ctx, inst, options.durationMs), grace(options.durationMs), "closed loop");
    const clientCpu = process.cpuUsage(clientCpuBefore);
    const [redisCpuAfter, scriptUsecAfter] = await Promise.all([sampler.redisCpu(l), sampler.scriptUsec(l)]);
    const redisCpuSec = redisCpuAfter - redisCpuBefore;
    const scriptUs = scriptUsecAfter - scriptUsecBefore;
    if (t.error !== undefined) {
      ctx.fail(l, t.error);
      return;
    }
    const cpuOps = t.completed ?? t.ops;
    const [inFlightP50, inFlightP99] = percentiles(t.samplesMs ?? [], [50, 99]);
    await inst.reset?.();
    const s = await withDeadline(
      latency(ctx, inst, options.sequentialMs),
      grace(options.sequentialMs),
      "sequential run",
    );
    if (s.error !== undefined) {
      ctx.fail(l, `sequential: ${s.error}`);
      return;
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
    ctx.log(
      `  ${l.scenario.id}: ${r.opsPerSec} ${l.result.unit}/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms; ` +
        `${options.concurrency} in flight p99 ${r.inFlightP99Ms ?? "—"} ms; CPU µs/op client ` +
        `${r.clientCpuUsPerOp ?? "—"}, redis ${r.redisCpuUsPerOp ?? "—"}`,
    );
  } catch (err) {
    ctx.fail(l, message(err));
  }
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

/**
 * Round trips per operation: MONITOR on `target` over a short separate run, one operation at a time (micro-batched
 * rows: the closed loop's callers in flight, where calls share script calls).
 */
export async function countRoundTrips(ctx: RunContext, l: Live, target: RedisServer | readonly RedisServer[]) {
  const { options } = ctx;
  const inst = l.instance as ScenarioInstance;
  try {
    await inst.reset?.();
    const n = options.roundTripOps;
    const inFlight = l.scenario.roundTripConcurrency === "closed-loop" ? Math.min(options.concurrency, n) : 1;
    const counts = await withRetry(() =>
      withDeadline(
        countCommands(target, async () => {
          if (inst.countOps !== undefined) await inst.countOps(n);
          else if (inst.op !== undefined) await countLoop(inst.op.bind(inst), n, inFlight, ctx.counter);
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
    ctx.fail(l, `round-trip count: ${message(err)}`);
  }
}

/** Memory per entity: INFO used_memory delta over a fresh set of entities, on an emptied database. */
export async function measureMemory(ctx: RunContext, l: Live, admin: Redis): Promise<void> {
  const count = ctx.options.memoryEntities;
  const entity = l.instance?.entity?.bind(l.instance) as (j: number) => Promise<unknown>;
  try {
    // From an empty database: keys of earlier scenarios expiring meanwhile would otherwise skew the delta.
    // Every round and count is done by now, and entities use fresh names, so nothing needs the old data.
    await admin.flushall("SYNC");
    const before = await usedMemory(admin);
    await withDeadline(populate(count, entity, 10), 60_000, "memory run");
    const bytes = (await usedMemory(admin)) - before;
    l.result.memory = {
      entity: l.scenario.memoryEntity as string,
      count,
      bytes,
      bytesPerEntity: Math.round(bytes / count),
    };
  } catch (err) {
    ctx.fail(l, `memory: ${message(err)}`);
  }
}
