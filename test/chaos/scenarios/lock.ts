import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { tickHistory } from "@coordis/lock";
import {
  describeSchedule,
  type FaultKind,
  type FaultProxy,
  type FaultSchedule,
  type FaultStep,
  faultSchedule,
  type RedisServer,
  runSchedule,
  startProxy,
  startRedis,
  testPrefix,
  tryWaitUntil,
} from "@coordis/testing";
import {
  type ChaosWorker,
  reply,
  spawnWorker,
  stopWorkers,
  Violations,
  type WorkerMessage,
  waitReady,
} from "../lib/workers.js";
import type { ChaosScenario, ScenarioContext, ScenarioResult } from "../scenario.js";

/** Worker processes of the tick and Redlock-extension scenarios. */
const WORKERS = 4;
/** Worker processes contending for the lock in lock-mutex and lock-redlock. */
export const LOCK_WORKERS = 8;
/** Lease TTL, ms: short, so every pause of a worker (600–1500 ms) outlasts it. */
const TTL_MS = 500;
/** Faults last this long, ms: a SIGSTOPped worker is always paused past its TTL. */
const LOCK_FAULT_MS: [number, number] = [TTL_MS + 100, TTL_MS * 3];
/**
 * Each critical section "works" 0..HOLD_MAX_MS ms between its fenced read and its fenced write: short, so the full
 * run makes well over 10,000 acquisitions.
 */
const HOLD_MAX_MS = 10;
/** Tolerance when comparing timestamps of different processes (Date.now() has 1 ms resolution), ms. */
const CLOCK_TOLERANCE_MS = 2;
/** After the faults, accepted sections must resume within this time, ms. */
const RECOVERY_MS = 10_000;
/**
 * How many accepted sections must follow the heal within RECOVERY_MS: progress has really resumed, and even a run
 * whose faults left little room (a short run with several Redis kills) has a history worth checking.
 */
export const RECOVERY_SECTIONS = 10;

/** One acquisition as a worker reported it (wall-clock ms of this machine, shared by all processes). */
export interface Acquisition {
  worker: string;
  fence: number;
  reqAt: number;
  gotAt: number;
  validUntil: number;
  releaseAt: number | undefined;
}

/** One critical section as the register saw it (register clock: the parent's performance.now()). */
interface Section {
  worker: string;
  fence: number;
  beginAt: number;
  beginOk: boolean;
  endAt: number | undefined;
  endOk: boolean;
}

/**
 * The protected resource: a register holding a counter that honours fences. A fenced read (`begin`) or write
 * (`end`) is accepted only when its fence is ≥ the highest fence seen so far, which then becomes that fence; the
 * write stores the value the section computed from its read. Equal fences are let through on purpose: two holders
 * given the same fence would then both be accepted, and the checker sees the overlap and the lost update.
 */
export class FencedRegister {
  maxSeen = 0;
  value = 0;
  writes = 0;
  readonly sections: Section[] = [];
  readonly #open = new Map<string, Section>();

  begin(worker: string, fence: number): { accepted: boolean; value: number } {
    const accepted = fence >= this.maxSeen;
    if (accepted) this.maxSeen = fence;
    const section: Section = {
      worker,
      fence,
      beginAt: performance.now(),
      beginOk: accepted,
      endAt: undefined,
      endOk: false,
    };
    this.sections.push(section);
    this.#open.set(`${worker}/${fence}`, section);
    return { accepted, value: this.value };
  }

  end(worker: string, fence: number, value: number): boolean {
    const section = this.#open.get(`${worker}/${fence}`);
    this.#open.delete(`${worker}/${fence}`);
    const accepted = section?.beginOk === true && fence >= this.maxSeen;
    if (accepted) {
      this.maxSeen = fence;
      this.value = value;
      this.writes++;
    }
    if (section !== undefined) {
      section.endAt = performance.now();
      section.endOk = accepted;
    }
    return accepted;
  }
}

/**
 * The history checker. Register side: accepted sections never overlap, accepted fences strictly increase, no update
 * is lost. Lock side: no fence is handed out twice, fences increase in real-time order (an acquisition requested
 * after another one returned gets a higher fence), and no two leases are valid at the same instant (a lease counts
 * from when acquire returned until the earlier of its local validity deadline and its release).
 */
export function checkLockHistory(
  register: FencedRegister,
  acquisitions: readonly Acquisition[],
  violations: Violations,
): { sectionsAccepted: number; sectionsRejected: number; maxFence: number } {
  const accepted = register.sections.filter((s) => s.beginOk && s.endOk).sort((a, b) => a.beginAt - b.beginAt);
  for (let i = 1; i < accepted.length; i++) {
    const prev = accepted[i - 1] as Section;
    const cur = accepted[i] as Section;
    if (cur.beginAt < (prev.endAt as number)) {
      violations.add(
        "overlap",
        `accepted sections overlap: ${prev.worker} fence ${prev.fence} [${prev.beginAt.toFixed(1)}, ${prev.endAt?.toFixed(1)}] and ${cur.worker} fence ${cur.fence} began at ${cur.beginAt.toFixed(1)}`,
      );
    }
    if (cur.fence <= prev.fence) {
      violations.add("fence-order", `accepted fence ${cur.fence} (${cur.worker}) after accepted fence ${prev.fence}`);
    }
  }
  if (register.value !== register.writes) {
    violations.add("lost-update", `register holds ${register.value} after ${register.writes} accepted writes`);
  }

  const byFence = new Map<number, Acquisition>();
  for (const a of acquisitions) {
    const other = byFence.get(a.fence);
    if (other !== undefined) {
      violations.add("duplicate-fence", `fence ${a.fence} handed to ${other.worker} and to ${a.worker}`);
    } else byFence.set(a.fence, a);
  }
  // Real-time order: sweep acquisitions by request time, tracking the highest fence among those that returned
  // strictly earlier.
  const byGot = [...acquisitions].sort((a, b) => a.gotAt - b.gotAt);
  const byReq = [...acquisitions].sort((a, b) => a.reqAt - b.reqAt);
  let j = 0;
  let best: Acquisition | undefined;
  for (const a of byReq) {
    while (j < byGot.length && (byGot[j] as Acquisition).gotAt < a.reqAt) {
      const g = byGot[j] as Acquisition;
      if (best === undefined || g.fence > best.fence) best = g;
      j++;
    }
    if (best !== undefined && a.fence <= best.fence) {
      violations.add(
        "fence-regression",
        `${a.worker} requested at ${a.reqAt} and got fence ${a.fence}, but ${best.worker} had already got fence ${best.fence} at ${best.gotAt}`,
      );
    }
  }
  // Mutual exclusion of valid leases.
  const intervals = acquisitions
    .map((a) => ({ a, from: a.gotAt, to: Math.min(a.validUntil, a.releaseAt ?? Number.POSITIVE_INFINITY) }))
    .filter((x) => x.to > x.from)
    .sort((x, y) => x.from - y.from);
  let open: (typeof intervals)[number] | undefined;
  for (const x of intervals) {
    if (open !== undefined && x.from < open.to - CLOCK_TOLERANCE_MS) {
      violations.add(
        "exclusion",
        `${open.a.worker} (fence ${open.a.fence}) valid until ${open.to} but ${x.a.worker} (fence ${x.a.fence}) held it from ${x.from}`,
      );
    }
    if (open === undefined || x.to > open.to) open = x;
  }
  return {
    sectionsAccepted: accepted.length,
    sectionsRejected: register.sections.length - accepted.length,
    maxFence: Math.max(0, ...acquisitions.map((a) => a.fence)),
  };
}

/**
 * Keeps at most one server down at a time, so a majority of Redlock's masters always keeps its data (the README's
 * stated tolerance), and makes every killed master stay down ≥ one TTL + 100 ms (its "delayed restart"). Steps are
 * dropped or lengthened, never moved, so the schedule stays a pure function of the seed.
 */
function oneServerDownAtATime(schedule: FaultSchedule): FaultSchedule {
  const kept: FaultStep[] = [];
  let downUntil = -1;
  for (const original of schedule.steps) {
    let step = original;
    if (step.target === "server" && step.fault === "kill") {
      if (step.atMs < downUntil) continue;
      step = { ...step, durationMs: Math.max(step.durationMs, TTL_MS + 100) };
      downUntil = step.atMs + step.durationMs + 500;
    }
    kept.push(step);
  }
  return faultSchedule({ seed: schedule.seed, steps: kept });
}

interface LockScenarioOptions {
  mode: "mutex" | "redlock";
  name: string;
  description: string;
}

function lockScenario({ mode, name, description }: LockScenarioOptions): ChaosScenario {
  return {
    name,
    description,
    // About 40 acquisitions a second under these faults on 2 shared cores: 5 minutes make > 10,000.
    defaultDurationMs: 300_000,
    run: (context) => runLockScenario(mode, name, context),
  };
}

async function runLockScenario(
  mode: "mutex" | "redlock",
  scenario: string,
  { seed, durationMs, log }: ScenarioContext,
): Promise<ScenarioResult> {
  const started = performance.now();
  const masters = mode === "mutex" ? 1 : 3;
  const meanIntervalMs = Math.min(1_500, Math.max(300, Math.round(durationMs / 12)));
  // Mutex: one server with AOF and appendfsync always, so kill/restart loses no acknowledged write (the README's
  // condition for fences to survive restarts); a proxy per worker partitions single clients.
  // Redlock: three masters without persistence, a proxy per master (shared by all workers) partitions a master;
  // at most one master is down at a time and each stays down longer than a TTL.
  const faults: FaultKind[] =
    mode === "mutex"
      ? ["pause", "kill", "restart", "latency", "drop", "blackhole"]
      : ["pause", "kill", "latency", "drop", "blackhole"];
  const proxiesCount = mode === "mutex" ? LOCK_WORKERS : masters;
  let schedule = faultSchedule({
    seed,
    generate: {
      durationMs,
      faults,
      meanIntervalMs,
      targets: { servers: masters, proxies: proxiesCount, processes: LOCK_WORKERS },
      faultMs: LOCK_FAULT_MS,
      latencyMs: [5, 60],
    },
  });
  if (mode === "redlock") schedule = oneServerDownAtATime(schedule);
  log(describeSchedule(schedule));

  const violations = new Violations();
  const register = new FencedRegister();
  const acquisitions = new Map<string, Acquisition>();
  const acquireFailed: Record<string, number> = {};
  const servers: RedisServer[] = [];
  const proxies: FaultProxy[] = [];
  const workers: ChaosWorker[] = [];
  let respawns = 0;
  let crashes = 0;
  const prefix = testPrefix();
  try {
    for (let i = 0; i < masters; i++) {
      // AOF with appendfsync always on every master: fences must be remembered across restarts (packages/lock
      // README, "Redlock and lost data"); without it a restarted master plus a partitioned one can let a fence go back.
      servers.push(await startRedis({ appendOnly: true, config: { appendfsync: "always" }, leastPrivilege: true }));
    }
    for (let i = 0; i < proxiesCount; i++) {
      proxies.push(await startProxy({ target: servers[mode === "mutex" ? 0 : i] as RedisServer, seed: seed + i }));
    }
    let ready = 0;
    const onMessage = (msg: WorkerMessage, worker: ChaosWorker) => {
      const id = `w${worker.slot}.${worker.child.pid}`;
      switch (msg.type) {
        case "ready":
          ready++;
          break;
        case "acquire-failed":
          acquireFailed[msg.code as string] = (acquireFailed[msg.code as string] ?? 0) + 1;
          break;
        case "acquired":
          acquisitions.set(`${id}/${msg.fence}`, {
            worker: id,
            fence: msg.fence as number,
            reqAt: msg.reqAt as number,
            gotAt: msg.gotAt as number,
            validUntil: msg.validUntil as number,
            releaseAt: undefined,
          });
          break;
        case "releasing": // sent before the release command (see lock-worker.ts)
        case "released": {
          const a = acquisitions.get(`${id}/${msg.fence}`);
          if (a !== undefined) a.releaseAt ??= msg.releaseAt as number;
          break;
        }
        case "begin":
          reply(worker, msg, register.begin(id, msg.fence as number));
          break;
        case "end":
          reply(worker, msg, { accepted: register.end(id, msg.fence as number, msg.value as number) });
          break;
      }
    };
    const spawn = (slot: number, incarnation: number) => {
      const urls = mode === "mutex" ? [(proxies[slot] as FaultProxy).url] : proxies.map((p) => p.url);
      const w = spawnWorker(
        "lock-worker.ts",
        slot,
        [
          JSON.stringify({
            mode,
            urls,
            prefix,
            name: "chaos-lock",
            ttlMs: TTL_MS,
            waitMs: 2_000,
            holdMaxMs: HOLD_MAX_MS,
            commandTimeoutMs: 400,
            nodeTimeoutMs: 200,
            seed: (seed + slot * 7919 + incarnation * 104729) >>> 0,
          }),
        ],
        onMessage,
      );
      w.child.once("exit", (code, signal) => {
        if (signal === null && code !== 0) {
          crashes++;
          violations.add("worker-crash", `worker ${slot} exited with code ${code}: ${w.stderr().slice(-600)}`);
        }
      });
      return w;
    };
    for (let i = 0; i < LOCK_WORKERS; i++) workers.push(spawn(i, 0));
    await waitReady(workers, () => ready);

    const processes = workers.map((w) => w.child);
    const faultLog = await runSchedule(
      schedule,
      { servers, proxies, processes },
      {
        onInject(entry) {
          const { step } = entry;
          if (step.target !== "process" || step.fault !== "kill") return;
          respawns++;
          const w = spawn(step.index, respawns);
          workers.push(w);
          processes[step.index] = w.child;
        },
      },
    );
    log(`faults done: ${faultLog.injected} injected, ${faultLog.repaired} repaired by the final sweep`);

    // Liveness: once healed, accepted sections resume (a fence that went back would leave every write rejected).
    const before = register.writes;
    const recovered = await tryWaitUntil(() => register.writes >= before + RECOVERY_SECTIONS, RECOVERY_MS);
    if (!recovered) {
      violations.add(
        "no-progress",
        `only ${register.writes - before} accepted sections within ${RECOVERY_MS} ms after the faults were healed (register fence ${register.maxSeen})`,
      );
    }
    await stopWorkers(workers);

    const history = [...acquisitions.values()];
    const summary = checkLockHistory(register, history, violations);
    const operations = history.length + Object.values(acquireFailed).reduce((n, c) => n + c, 0);
    return {
      scenario,
      operations,
      faultsInjected: faultLog.injected,
      violations: violations.count,
      seed,
      elapsedMs: Math.round(performance.now() - started),
      details: {
        acquisitions: history.length,
        acquireFailed,
        ...summary,
        registerFence: register.maxSeen,
        violationsByKind: violations.byKind,
        workers: LOCK_WORKERS,
        pauseMs: LOCK_FAULT_MS,
        holdMaxMs: HOLD_MAX_MS,
        respawns,
        crashes,
        ttlMs: TTL_MS,
        masters,
        persistence:
          mode === "mutex"
            ? "appendonly, appendfsync always"
            : "appendonly, appendfsync always; one master down at a time",
        faultsByKind: faultLog.byKind,
        faultErrors: faultLog.entries.filter((e) => e.error !== undefined).map((e) => e.error),
        durationMs,
      },
      samples: violations.samples,
    };
  } finally {
    await stopWorkers(workers, 0);
    for (const p of proxies) await p.close();
    for (const s of servers) await s.stop();
  }
}

/** Lock checker on a single Redis with AOF: Mutex. */
export const lockMutex = lockScenario({
  mode: "mutex",
  name: "lock-mutex",
  description:
    "8 worker processes, Mutex + fenced register; pause workers past TTL (600-1500 ms > 500 ms), kill/restart Redis (AOF always), partition clients",
});

/** Lock checker over 3 masters: Redlock. */
export const lockRedlock = lockScenario({
  mode: "redlock",
  name: "lock-redlock",
  description:
    "8 worker processes, Redlock over 3 masters + fenced register; pause workers past TTL, kill one master at a time, partition masters",
});

// ---------------------------------------------------------------------------------------------------------------
// runOncePerTick: replicas racing on ticks whose jobs outlast both the lease and the tick record's TTL.

/** Lease TTL of a tick run, ms: pauses of workers and of Redis (up to TICK_PAUSE_MS[1]) outlast it. */
const TICK_TTL_MS = 300;
/** How long a tick record is kept after its run, ms (the smallest value runOncePerTick accepts). */
const TICK_RECORD_TTL_MS = 1_000;
/** A job lasts this long, ms: longer than the lease and than the record's TTL. */
const TICK_JOB_MS: [number, number] = [1_100, 1_500];
/** Each replica calls 0..TICK_SKEW_MS after a tick is announced: some arrive after the record's TTL, mid-run. */
const TICK_SKEW_MS = 1_800;
/** A new tick every TICK_EVERY_MS during the faulty phase. */
const TICK_EVERY_MS = 400;
/** Pauses of workers and of Redis, ms: longer than the lease, shorter than the record's TTL. */
const TICK_PAUSE_MS: [number, number] = [100, 500];

/** One run of a tick's fn, as the replica that ran it reported it (wall-clock ms of this machine). */
export interface TickRun {
  worker: string;
  job: "once" | "retry";
  tick: number;
  fence: number;
  /** When fn started and stopped, and when runOncePerTick returned or threw. */
  startAt: number;
  stopAt: number;
  returnedAt: number;
  /** ok (recorded), lost (LeaseLostError: fn returned but the tick was no longer held), aborted (fn stopped on its signal), finish-failed. */
  outcome: string;
}

/** One entry of a job's history (what `tickHistory` returns). */
export interface TickHistoryEntry {
  tick: number;
  fence: number;
  ok: boolean;
}

/**
 * The runOncePerTick checker. `once` (no retryOnError, fn stops when its signal aborts): a tick's fn never runs
 * twice — a second run is allowed only when it started more than recordTtlMs / 2 after every earlier run of the tick
 * stopped (a replica arriving after the record's documented lifetime; half of it is kept as margin for pauses).
 * Both jobs: a run that reported `ok` really held the tick throughout (no later claim of the tick started before
 * it returned) and is in the history with its fence; a run that reported its tick lost is not in the history.
 */
export function checkTickHistory(
  runs: readonly TickRun[],
  history: Readonly<Record<string, readonly TickHistoryEntry[]>>,
  recordTtlMs: number,
  violations: Violations,
): { ticks: number; runs: number; lateReruns: number; outcomes: Record<string, number> } {
  const groups = new Map<string, TickRun[]>();
  const outcomes: Record<string, number> = {};
  for (const r of runs) {
    const key = `${r.job}/${r.tick}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
    outcomes[`${r.job}:${r.outcome}`] = (outcomes[`${r.job}:${r.outcome}`] ?? 0) + 1;
  }
  let lateReruns = 0;
  for (const [key, group] of groups) {
    group.sort((a, b) => a.startAt - b.startAt);
    if (key.startsWith("once/")) {
      let lastStop = Number.NEGATIVE_INFINITY;
      let last: TickRun | undefined;
      for (const r of group) {
        if (last !== undefined) {
          if (r.startAt < lastStop + recordTtlMs / 2) {
            violations.add(
              "tick-twice",
              `tick ${key} ran on ${last.worker} (fence ${last.fence}, ${last.startAt}..${last.stopAt}) and again on ${r.worker} (fence ${r.fence}) from ${r.startAt}`,
            );
          } else lateReruns++;
        }
        if (r.stopAt > lastStop) {
          lastStop = r.stopAt;
          last = r;
        }
      }
    }
    const recorded = history[key.split("/")[0] as string] ?? [];
    for (const a of group) {
      const inHistory = recorded.find((h) => h.fence === a.fence);
      if (a.outcome === "ok") {
        const later = group.find((b) => b.fence > a.fence && b.startAt < a.returnedAt);
        if (later !== undefined) {
          violations.add(
            "ok-not-held",
            `tick ${key}: ${a.worker} (fence ${a.fence}) reported ok at ${a.returnedAt}, but ${later.worker} claimed it (fence ${later.fence}) and started at ${later.startAt}`,
          );
        }
        if (inHistory?.ok !== true) {
          violations.add(
            "ok-not-recorded",
            `tick ${key}: ${a.worker} (fence ${a.fence}) reported ok, history has no ok entry`,
          );
        }
      } else if (a.outcome === "lost" && inHistory !== undefined) {
        violations.add(
          "lost-recorded",
          `tick ${key}: ${a.worker} (fence ${a.fence}) reported its tick lost, yet it is recorded`,
        );
      }
    }
  }
  return { ticks: groups.size, runs: runs.length, lateReruns, outcomes };
}

async function runTickScenario({ seed, durationMs, log }: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const schedule = faultSchedule({
    seed,
    generate: {
      durationMs,
      faults: ["pause"],
      meanIntervalMs: Math.min(800, Math.max(250, Math.round(durationMs / 12))),
      targets: { servers: 1, proxies: 0, processes: WORKERS },
      faultMs: TICK_PAUSE_MS,
    },
  });
  log(describeSchedule(schedule));
  const violations = new Violations();
  const runs: TickRun[] = [];
  let calls = 0;
  let callsDone = 0;
  const skipped: Record<string, number> = {};
  const workers: ChaosWorker[] = [];
  const prefix = testPrefix();
  let server: RedisServer | undefined;
  let ticker: NodeJS.Timeout | undefined;
  try {
    server = await startRedis({ leastPrivilege: true });
    let ready = 0;
    const onMessage = (msg: WorkerMessage, worker: ChaosWorker) => {
      if (msg.type === "ready") ready++;
      else if (msg.type === "run") {
        callsDone++;
        runs.push({
          worker: `w${worker.slot}`,
          job: msg.job as TickRun["job"],
          tick: msg.tick as number,
          fence: msg.fence as number,
          startAt: msg.startAt as number,
          stopAt: msg.stopAt as number,
          returnedAt: msg.returnedAt as number,
          outcome: msg.outcome as string,
        });
      } else if (msg.type === "skipped") {
        callsDone++;
        skipped[msg.outcome as string] = (skipped[msg.outcome as string] ?? 0) + 1;
      }
    };
    for (let slot = 0; slot < WORKERS; slot++) {
      const config = {
        url: server.url,
        prefix,
        owner: `w${slot}`,
        ttlMs: TICK_TTL_MS,
        recordTtlMs: TICK_RECORD_TTL_MS,
        skewMaxMs: TICK_SKEW_MS,
        jobMs: TICK_JOB_MS,
        commandTimeoutMs: 3_000,
        seed: (seed + slot * 7919) >>> 0,
      };
      workers.push(spawnWorker("tick-worker.ts", slot, [JSON.stringify(config)], onMessage));
    }
    await waitReady(workers, () => ready);

    // A job's history expires recordTtlMs after its last finish, so a quiet spell can drop older entries: read it
    // every 200 ms and keep every entry seen (each lives ≥ recordTtlMs after it was pushed).
    const client = server.client({ commandTimeoutMs: 10_000 });
    const seen: Record<string, Map<number, TickHistoryEntry>> = { once: new Map(), retry: new Map() };
    const readHistory = async () => {
      for (const job of ["once", "retry"] as const) {
        for (const h of await tickHistory(client, job, { prefix, limit: 10_000 })) {
          seen[job]?.set(h.fence, { tick: h.tick, fence: h.fence, ok: h.ok });
        }
      }
    };
    let polling = true;
    const poller = (async () => {
      while (polling) {
        await readHistory().catch(() => {});
        await sleep(200);
      }
    })();

    let tick = 0;
    const announce = () => {
      tick++;
      calls += 2 * workers.length; // two jobs per replica
      for (const w of workers) w.send({ type: "tick", tick });
    };
    announce();
    ticker = setInterval(announce, TICK_EVERY_MS);
    const faultLog = await runSchedule(schedule, {
      servers: [server],
      proxies: [],
      processes: workers.map((w) => w.child),
    });
    clearInterval(ticker);
    log(`faults done: ${faultLog.injected} injected, ${faultLog.repaired} repaired by the final sweep; ${tick} ticks`);

    // Every call ends: skew + job + a few round trips after the last tick.
    const drainMs = TICK_SKEW_MS + TICK_JOB_MS[1] + 10_000;
    if (!(await tryWaitUntil(() => callsDone >= calls, drainMs))) {
      violations.add(
        "no-progress",
        `${calls - callsDone} of ${calls} calls still pending ${drainMs} ms after the last tick`,
      );
    }
    await stopWorkers(workers);
    polling = false;
    await poller;
    await readHistory();
    const history = { once: [...(seen.once?.values() ?? [])], retry: [...(seen.retry?.values() ?? [])] };
    const summary = checkTickHistory(runs, history, TICK_RECORD_TTL_MS, violations);
    if (summary.runs === 0) violations.add("no-progress", "no tick ran");
    return {
      scenario: "lock-tick",
      operations: calls,
      faultsInjected: faultLog.injected,
      violations: violations.count,
      seed,
      elapsedMs: Math.round(performance.now() - started),
      details: {
        ...summary,
        skipped,
        ticksAnnounced: tick,
        workers: WORKERS,
        ttlMs: TICK_TTL_MS,
        recordTtlMs: TICK_RECORD_TTL_MS,
        jobMs: TICK_JOB_MS,
        skewMs: TICK_SKEW_MS,
        violationsByKind: violations.byKind,
        faultsByKind: faultLog.byKind,
        durationMs,
      },
      samples: violations.samples,
    };
  } finally {
    clearInterval(ticker);
    await stopWorkers(workers, 0);
    await server?.stop();
  }
}

/** runOncePerTick checker: replicas racing on ticks with jobs longer than the lease and the record TTL. */
export const lockTick: ChaosScenario = {
  name: "lock-tick",
  description:
    "4 replicas run 2 jobs per tick with runOncePerTick (skewed up to 1.8 s, jobs 1.1-1.5 s > ttl 300 ms and record TTL 1 s); pause workers and Redis",
  defaultDurationMs: 60_000,
  run: runTickScenario,
};

// ---------------------------------------------------------------------------------------------------------------
// Redlock extension while masters are merely slow: paused for less than the lease.

/** Lease TTL of the extension checker, ms: auto-extension every 400 ms. */
const SLOW_TTL_MS = 1_200;
/** Masters are paused this long, ms: longer than nodeTimeoutMs, well within a lease. */
const SLOW_PAUSE_MS: [number, number] = [150, 500];
/** Each lease is held this long, ms (several auto-extensions). */
const SLOW_HOLD_MS: [number, number] = [700, 1_800];

async function runRedlockSlowScenario({ seed, durationMs, log }: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const schedule = faultSchedule({
    seed,
    generate: {
      durationMs,
      faults: ["pause"],
      meanIntervalMs: 200,
      targets: { servers: 3, proxies: 0, processes: 0 },
      faultMs: SLOW_PAUSE_MS,
    },
  });
  log(describeSchedule(schedule));
  const violations = new Violations();
  const outcomes: Record<string, number> = {};
  const losses: Array<{ reason: string; holders: number }> = [];
  const servers: RedisServer[] = [];
  const admins: ReturnType<RedisServer["adminClient"]>[] = [];
  const workers: ChaosWorker[] = [];
  const prefix = testPrefix();
  const quorum = 2;
  try {
    servers.push(...(await Promise.all([0, 1, 2].map(() => startRedis({ leastPrivilege: true })))));
    for (const s of servers) admins.push(s.adminClient({ commandTimeoutMs: 10_000 }));
    let ready = 0;
    let leasesAfterHeal = -1;
    const onMessage = (msg: WorkerMessage, worker: ChaosWorker) => {
      if (msg.type === "ready") ready++;
      else if (msg.type === "lease") {
        outcomes[msg.outcome as string] = (outcomes[msg.outcome as string] ?? 0) + 1;
        if (leasesAfterHeal >= 0) leasesAfterHeal++;
      } else if (msg.type === "lost") {
        // The worker waits for this reply before it releases: count the masters still holding its token (a read
        // on a paused master waits for it to resume).
        const key = `${prefix}:lock:{${msg.name as string}}`;
        Promise.all(admins.map((a) => a.get(key).catch(() => null))).then((values) => {
          const holders = values.filter((v) => v === msg.token).length;
          losses.push({ reason: msg.reason as string, holders });
          if (msg.reason === "not-held" && holders >= quorum) {
            violations.add(
              "false-loss",
              `w${worker.slot}: lease (fence ${msg.fence as number}) reported lost (not-held) while ${holders} of 3 masters held its token`,
            );
          }
          reply(worker, msg, {});
        });
      }
    };
    for (let slot = 0; slot < WORKERS; slot++) {
      const config = {
        urls: servers.map((s) => s.url),
        prefix,
        name: `slow-${slot}`,
        ttlMs: SLOW_TTL_MS,
        nodeTimeoutMs: 100,
        holdMs: SLOW_HOLD_MS,
        commandTimeoutMs: 5_000,
        seed: (seed + slot * 7919) >>> 0,
      };
      workers.push(spawnWorker("lock-extend-worker.ts", slot, [JSON.stringify(config)], onMessage));
    }
    await waitReady(workers, () => ready);
    log(`workers ready after ${Math.round(performance.now() - started)} ms`);
    const faultLog = await runSchedule(schedule, { servers, proxies: [], processes: [] });
    log(`faults done: ${faultLog.injected} injected, ${faultLog.repaired} repaired by the final sweep`);
    leasesAfterHeal = 0;
    if (!(await tryWaitUntil(() => leasesAfterHeal >= WORKERS, 15_000))) {
      violations.add(
        "no-progress",
        `only ${leasesAfterHeal} leases completed within 15 s after the faults were healed`,
      );
    }
    log(`${leasesAfterHeal} leases after the heal; stopping workers`);
    await stopWorkers(workers);
    const leases = Object.values(outcomes).reduce((n, c) => n + c, 0);
    return {
      scenario: "lock-redlock-slow",
      operations: leases,
      faultsInjected: faultLog.injected,
      violations: violations.count,
      seed,
      elapsedMs: Math.round(performance.now() - started),
      details: {
        outcomes,
        losses: losses.length,
        lossesWithTokenOnQuorum: losses.filter((l) => l.holders >= quorum).length,
        violationsByKind: violations.byKind,
        workers: WORKERS,
        ttlMs: SLOW_TTL_MS,
        pauseMs: SLOW_PAUSE_MS,
        faultsByKind: faultLog.byKind,
        durationMs,
      },
      samples: violations.samples,
    };
  } finally {
    await stopWorkers(workers, 0);
    for (const a of admins) a.disconnect();
    for (const s of servers) await s.stop();
  }
}

/** Redlock extension checker: masters paused for less than a lease must not make a held lease look lost. */
export const lockRedlockSlow: ChaosScenario = {
  name: "lock-redlock-slow",
  description:
    "4 workers hold Redlocks (ttl 1.2 s) with using() + auto-extension over 3 masters paused 150-500 ms; no lease reported lost while a quorum held its token",
  defaultDurationMs: 60_000,
  run: runRedlockSlowScenario,
};
