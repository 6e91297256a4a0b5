import { InvalidArgumentError, validate } from "@coordis/core";
import { mulberry32, randomSeed } from "./prng.js";

/**
 * A fault a schedule can inject:
 * - `pause`: SIGSTOP a server or process, SIGCONT after `durationMs`;
 * - `kill`: SIGKILL a server and restart it after `durationMs`; SIGKILL a process (permanent, see {@link runSchedule});
 * - `restart`: kill a server and start it again at once;
 * - `latency`: add `latencyMs` ± `jitterMs` per direction on a proxy, removed after `durationMs`;
 * - `drop`: reset every connection through a proxy (instantaneous);
 * - `blackhole`: partition a proxy, healed after `durationMs`;
 * - `refuse`: a proxy refuses new connections, accepts again after `durationMs`.
 */
export type FaultKind = "pause" | "kill" | "restart" | "latency" | "drop" | "blackhole" | "refuse";

/** What a fault acts on: `targets.servers[index]`, `targets.proxies[index]` or `targets.processes[index]`. */
export type FaultTargetKind = "server" | "proxy" | "process";

/** All fault kinds, in a fixed order. */
export const FAULT_KINDS: readonly FaultKind[] = ["pause", "kill", "restart", "latency", "drop", "blackhole", "refuse"];

const APPLIES_TO: Record<FaultKind, readonly FaultTargetKind[]> = {
  pause: ["server", "process"],
  kill: ["server", "process"],
  restart: ["server"],
  latency: ["proxy"],
  drop: ["proxy"],
  blackhole: ["proxy"],
  refuse: ["proxy"],
};

/** Faults with no duration: they happen and are over (`drop`, `restart`). */
const INSTANT: ReadonlySet<FaultKind> = new Set(["drop", "restart"]);

/** One step of a {@link FaultSchedule}. */
export interface FaultStep {
  /** When to inject it, ms after the run starts. */
  readonly atMs: number;
  /** What to inject. */
  readonly fault: FaultKind;
  /** The kind of target. */
  readonly target: FaultTargetKind;
  /** Index of the target in its list. */
  readonly index: number;
  /** How long until it is healed, ms; 0 for `drop` and `restart`. */
  readonly durationMs: number;
  /** Added latency per direction, ms (`latency` only). */
  readonly latencyMs?: number;
  /** Jitter around `latencyMs`, ms (`latency` only). */
  readonly jitterMs?: number;
}

/** A replayable list of timed faults: the same seed and options always give the same steps. */
export interface FaultSchedule {
  /** The seed it was generated from (print it when a run fails; pass it back to replay). */
  readonly seed: number;
  /** When the last fault is healed, ms after the start. */
  readonly durationMs: number;
  /** Steps sorted by `atMs`. */
  readonly steps: readonly FaultStep[];
}

/** How {@link faultSchedule} generates steps. */
export interface GenerateFaultsOptions {
  /** Length of the run, ms: every fault is injected and healed within it. */
  durationMs: number;
  /** Fault kinds to draw from (uniformly). Each needs a target kind with a count > 0. */
  faults: readonly FaultKind[];
  /** Mean time between fault injections, ms (exponential inter-arrival times). */
  meanIntervalMs: number;
  /** How many targets of each kind the run will have; default `{ servers: 1, proxies: 1, processes: 0 }`. */
  targets?: { servers?: number; proxies?: number; processes?: number };
  /** Range of fault durations, ms; default `[meanIntervalMs / 4, meanIntervalMs]`. */
  faultMs?: readonly [number, number];
  /** Range of added latency per direction, ms; default `[20, 200]` (jitter is a quarter of it). */
  latencyMs?: readonly [number, number];
}

/** Options of {@link faultSchedule}: explicit `steps`, or `generate` from a seed. */
export interface FaultScheduleOptions {
  /** Seed of the generator; default a random one (reported as `schedule.seed`). */
  seed?: number;
  /** Explicit steps (sorted by time for you). */
  steps?: readonly FaultStep[];
  /** Generate steps pseudo-randomly from `seed`. */
  generate?: GenerateFaultsOptions;
}

function nonNegative(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new InvalidArgumentError(name, `expected a finite number ≥ 0, got ${validate.describeValue(v)}`);
  }
  return v;
}

function range(name: string, v: unknown, fallback: readonly [number, number]): readonly [number, number] {
  if (v === undefined) return fallback;
  if (!Array.isArray(v) || v.length !== 2) throw new InvalidArgumentError(name, "expected [min, max]");
  const [lo, hi] = [nonNegative(`${name}[0]`, v[0]), nonNegative(`${name}[1]`, v[1])];
  if (lo > hi) throw new InvalidArgumentError(name, `min ${lo} is greater than max ${hi}`);
  return [lo, hi];
}

function checkStep(step: FaultStep, i: number): FaultStep {
  const at = `steps[${i}]`;
  if (step === null || typeof step !== "object") throw new InvalidArgumentError(at, "expected a step object");
  if (!FAULT_KINDS.includes(step.fault)) {
    throw new InvalidArgumentError(`${at}.fault`, `expected one of ${FAULT_KINDS.join(", ")}`);
  }
  if (!APPLIES_TO[step.fault].includes(step.target)) {
    throw new InvalidArgumentError(
      `${at}.target`,
      `"${step.fault}" applies to ${APPLIES_TO[step.fault].join(" or ")}, not ${validate.describeValue(step.target)}`,
    );
  }
  if (!Number.isInteger(step.index) || step.index < 0) {
    throw new InvalidArgumentError(`${at}.index`, `expected an integer ≥ 0, got ${validate.describeValue(step.index)}`);
  }
  nonNegative(`${at}.atMs`, step.atMs);
  nonNegative(`${at}.durationMs`, step.durationMs);
  if (step.fault === "latency") nonNegative(`${at}.latencyMs`, step.latencyMs);
  if (step.jitterMs !== undefined) nonNegative(`${at}.jitterMs`, step.jitterMs);
  return { ...step, durationMs: INSTANT.has(step.fault) ? 0 : step.durationMs };
}

function generateSteps(seed: number, g: GenerateFaultsOptions): FaultStep[] {
  if (g === null || typeof g !== "object") throw new InvalidArgumentError("generate", "expected an object");
  const durationMs = nonNegative("generate.durationMs", g.durationMs);
  const mean = nonNegative("generate.meanIntervalMs", g.meanIntervalMs);
  if (mean === 0) throw new InvalidArgumentError("generate.meanIntervalMs", "must be > 0");
  const counts: Record<FaultTargetKind, number> = {
    server: g.targets?.servers ?? 1,
    proxy: g.targets?.proxies ?? 1,
    process: g.targets?.processes ?? 0,
  };
  for (const [kind, n] of Object.entries(counts)) {
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`generate.targets.${kind}`, "expected ≥ 0");
  }
  if (!Array.isArray(g.faults) || g.faults.length === 0) {
    throw new InvalidArgumentError("generate.faults", "expected a non-empty list of fault kinds");
  }
  for (const f of g.faults as readonly FaultKind[]) {
    if (!FAULT_KINDS.includes(f))
      throw new InvalidArgumentError("generate.faults", `unknown fault ${validate.describeValue(f)}`);
    if (!APPLIES_TO[f].some((t) => counts[t] > 0)) {
      throw new InvalidArgumentError("generate.faults", `"${f}" needs a ${APPLIES_TO[f].join(" or ")} target`);
    }
  }
  const [minFault, maxFault] = range("generate.faultMs", g.faultMs, [mean / 4, mean]);
  const [minLatency, maxLatency] = range("generate.latencyMs", g.latencyMs, [20, 200]);

  const random = mulberry32(seed);
  const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));
  const busyUntil = new Map<string, number>();
  const steps: FaultStep[] = [];
  let t = 0;
  for (;;) {
    t += -mean * Math.log(1 - random());
    if (t >= durationMs) break;
    const fault = g.faults[Math.floor(random() * g.faults.length)] as FaultKind;
    const kinds = APPLIES_TO[fault].filter((k) => counts[k] > 0);
    const target = kinds[Math.floor(random() * kinds.length)] as FaultTargetKind;
    const index = Math.floor(random() * counts[target]);
    const drawnMs = between(minFault, maxFault);
    const latencyMs = between(minLatency, maxLatency);
    // One fault at a time per target, so a step never acts on a target another step has broken.
    const key = `${target}:${index}`;
    const atMs = Math.round(Math.max(t, busyUntil.get(key) ?? 0));
    const instant = INSTANT.has(fault);
    const room = durationMs - atMs;
    if (room <= 0 || (!instant && room < Math.max(1, minFault))) continue;
    const faultMs = instant ? 0 : Math.min(drawnMs, room);
    // A killed or restarted server needs a moment to come back before it is hit again.
    busyUntil.set(key, atMs + faultMs + (fault === "kill" || fault === "restart" ? 250 : 20));
    steps.push({
      atMs,
      fault,
      target,
      index,
      durationMs: faultMs,
      ...(fault === "latency" ? { latencyMs, jitterMs: Math.round(latencyMs / 4) } : {}),
    });
  }
  return steps;
}

/**
 * Builds a fault schedule: explicit `steps`, or steps generated from a seed with a small PRNG (mulberry32) so a
 * failing chaos run can be replayed exactly from the seed it printed. Generated faults never overlap on one
 * target and are all healed within `generate.durationMs`.
 *
 * @example
 * const schedule = faultSchedule({ seed: 42, generate: { durationMs: 10_000, meanIntervalMs: 800,
 *   faults: ["pause", "latency", "drop", "blackhole"] } });
 * const log = await runSchedule(schedule, { servers: [server], proxies: [proxy] });
 * @throws InvalidArgumentError when the options or a step are invalid
 */
export function faultSchedule(options: FaultScheduleOptions): FaultSchedule {
  if (options === null || typeof options !== "object") {
    throw new InvalidArgumentError("options", "expected { seed?, steps } or { seed?, generate }");
  }
  const seed = options.seed ?? randomSeed();
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new InvalidArgumentError("seed", `expected an integer 0-4294967295, got ${String(seed)}`);
  }
  if ((options.steps === undefined) === (options.generate === undefined)) {
    throw new InvalidArgumentError("options", "give exactly one of steps or generate");
  }
  let steps: FaultStep[];
  if (options.steps !== undefined) {
    if (!Array.isArray(options.steps)) throw new InvalidArgumentError("steps", "expected an array");
    steps = options.steps.map(checkStep);
  } else {
    steps = generateSteps(seed, options.generate as GenerateFaultsOptions);
  }
  steps.sort((a, b) => a.atMs - b.atMs);
  const durationMs = steps.reduce((end, s) => Math.max(end, s.atMs + s.durationMs), 0);
  return Object.freeze({
    seed,
    durationMs: Math.max(durationMs, options.generate?.durationMs ?? 0),
    steps: Object.freeze(steps),
  });
}

/** One line per step: `+1200ms pause server[0] for 300ms`. For logs and failure messages. */
export function describeSchedule(schedule: FaultSchedule): string {
  const lines = schedule.steps.map((s) => {
    const what = s.fault === "latency" ? `latency ${s.latencyMs}±${s.jitterMs ?? 0}ms` : s.fault;
    return `+${s.atMs}ms ${what} ${s.target}[${s.index}]${s.durationMs > 0 ? ` for ${s.durationMs}ms` : ""}`;
  });
  return [`seed ${schedule.seed}, ${schedule.steps.length} faults over ${schedule.durationMs}ms`, ...lines].join("\n");
}
