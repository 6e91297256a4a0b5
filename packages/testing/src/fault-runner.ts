import type { ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";
import { InvalidArgumentError } from "@coordis/core";
import {
  FAULT_KINDS,
  type FaultKind,
  type FaultSchedule,
  type FaultStep,
  type FaultTargetKind,
} from "./fault-schedule.js";
import type { FaultProxy } from "./proxy.js";
import type { RedisServer } from "./server-types.js";

/** Runs a {@link FaultSchedule} against real servers, proxies and processes (the schedule itself: fault-schedule.ts). */

/** What {@link runSchedule} acts on. Lists are read when a step fires, so a slot may be replaced meanwhile. */
export interface FaultTargets {
  /** Redis servers from `startRedis` (pause / kill / restart). */
  servers?: readonly RedisServer[];
  /** Proxies from `startProxy` (latency / drop / blackhole / refuse). */
  proxies?: readonly FaultProxy[];
  /** Worker processes (pause with SIGSTOP/SIGCONT, kill with SIGKILL). */
  processes?: readonly ChildProcess[];
}

/** What happened to one step. Times are ms after the run started. */
export interface FaultLogEntry {
  /** The planned step. */
  readonly step: FaultStep;
  /** When it was injected; `undefined` when it never was (aborted first, or it failed). */
  injectedAtMs: number | undefined;
  /** When it was healed; equals `injectedAtMs` for instantaneous faults; `undefined` for a killed process. */
  healedAtMs: number | undefined;
  /** Why injecting or healing failed, if it did. */
  error?: string;
}

/** The record of a {@link runSchedule} run, for chaos reports. */
export interface FaultLog {
  /** The schedule's seed. */
  readonly seed: number;
  /** Wall-clock start of the run (ISO 8601). */
  readonly startedAt: string;
  /** One entry per step, in schedule order. */
  readonly entries: readonly FaultLogEntry[];
  /** Faults actually injected. */
  readonly injected: number;
  /** Injected faults per kind. */
  readonly byKind: Readonly<Record<FaultKind, number>>;
  /** Whether the signal stopped the run early (injected faults were still healed). */
  readonly aborted: boolean;
  /** Targets the final sweep had to repair (a step's heal failed or steps overlapped on one target). */
  readonly repaired: number;
}

/** Options of {@link runSchedule}. */
export interface RunScheduleOptions {
  /** Stops the run: pending steps are skipped, injected faults healed at once. */
  signal?: AbortSignal;
  /** Called after each injection (e.g. to respawn a killed worker into its `processes` slot). */
  onInject?: (entry: FaultLogEntry) => void;
}

/** Resolves true at `at` (performance.now() time), false as soon as the signal aborts. */
function sleepUntil(at: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      },
      Math.max(0, at - performance.now()),
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function signalProcess(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null) throw new Error(`process ${child.pid} has exited`);
  if (!child.kill(signal)) throw new Error(`could not send ${signal} to process ${child.pid}`);
}

/**
 * Executes a schedule against real targets: each step fires at its offset (all steps run on their own timers, so
 * faults on different targets overlap as planned) and is healed `durationMs` later: paused servers and processes
 * get SIGCONT, killed servers are restarted, proxies lose their latency, heal, and accept again. A final sweep
 * resumes, restarts and heals anything still broken, so every fault is healed when the promise resolves — except
 * a `kill` of a process, which is permanent (respawn it from `onInject` into the same `processes` slot if needed).
 *
 * @returns the log: when each fault was injected and healed, and how many were injected
 * @throws InvalidArgumentError when a step names a target that is not in `targets` (before anything runs)
 */
export async function runSchedule(
  schedule: FaultSchedule,
  targets: FaultTargets,
  options: RunScheduleOptions = {},
): Promise<FaultLog> {
  const lists: Record<FaultTargetKind, readonly unknown[]> = {
    server: targets.servers ?? [],
    proxy: targets.proxies ?? [],
    process: targets.processes ?? [],
  };
  schedule.steps.forEach((step, i) => {
    if (step.index >= lists[step.target].length) {
      throw new InvalidArgumentError(
        `schedule.steps[${i}]`,
        `targets ${step.target}[${step.index}], but targets has ${lists[step.target].length} of them`,
      );
    }
  });
  const { signal, onInject } = options;
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const elapsed = () => Math.round(performance.now() - t0);
  const touched = { server: new Set<number>(), proxy: new Set<number>(), process: new Set<number>() };
  const pausedProcesses = new Set<ChildProcess>();
  // Operations on one target run one after another: a restart still in progress is never raced by the next step.
  const chains = new Map<string, Promise<unknown>>();
  const serial = <T>(step: FaultStep, fn: () => Promise<T> | T): Promise<T> => {
    const key = `${step.target}:${step.index}`;
    const next = (chains.get(key) ?? Promise.resolve()).then(fn);
    chains.set(
      key,
      next.catch(() => {}),
    );
    return next;
  };

  const inject = async (step: FaultStep): Promise<(() => Promise<void> | void) | undefined> => {
    touched[step.target].add(step.index);
    if (step.target === "server") {
      const server = lists.server[step.index] as RedisServer;
      if (step.fault === "pause") {
        server.pause();
        return () => server.resume();
      }
      if (step.fault === "kill") {
        await server.kill();
        return () => server.restart();
      }
      await server.restart();
      return undefined;
    }
    if (step.target === "process") {
      const child = lists.process[step.index] as ChildProcess;
      if (step.fault === "pause") {
        signalProcess(child, "SIGSTOP");
        pausedProcesses.add(child);
        return () => {
          pausedProcesses.delete(child);
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGCONT");
        };
      }
      signalProcess(child, "SIGKILL");
      return undefined;
    }
    const proxy = lists.proxy[step.index] as FaultProxy;
    switch (step.fault) {
      case "latency":
        proxy.setLatency(step.latencyMs ?? 0, step.jitterMs ?? 0);
        return () => proxy.setLatency(0);
      case "drop":
        proxy.dropConnections();
        return undefined;
      case "blackhole":
        proxy.blackhole();
        return () => {
          proxy.heal();
        };
      default:
        proxy.refuse();
        return () => proxy.accept();
    }
  };

  const entries: FaultLogEntry[] = schedule.steps.map((step) => ({
    step,
    injectedAtMs: undefined,
    healedAtMs: undefined,
  }));
  await Promise.all(
    entries.map(async (entry) => {
      const { step } = entry;
      if (!(await sleepUntil(t0 + step.atMs, signal))) return;
      let heal: (() => Promise<void> | void) | undefined;
      try {
        heal = await serial(step, () => inject(step));
        entry.injectedAtMs = elapsed();
      } catch (err) {
        entry.error = `inject: ${message(err)}`;
        return;
      }
      onInject?.(entry);
      if (heal === undefined) {
        if (!(step.target === "process" && step.fault === "kill")) entry.healedAtMs = entry.injectedAtMs;
        return;
      }
      await sleepUntil(t0 + entry.injectedAtMs + step.durationMs, signal);
      try {
        await serial(step, heal);
        entry.healedAtMs = elapsed();
      } catch (err) {
        entry.error = `heal: ${message(err)}`;
      }
    }),
  );

  // Final sweep: whatever a failed heal or overlapping explicit steps left broken is repaired here.
  let repaired = 0;
  for (const i of touched.server) {
    const server = lists.server[i] as RedisServer;
    try {
      if (!server.running) {
        await server.restart();
        repaired++;
      } else if (server.paused) {
        server.resume();
        repaired++;
      }
    } catch {
      // reported through the entries' errors; nothing more to do
    }
  }
  for (const i of touched.proxy) {
    const proxy = lists.proxy[i] as FaultProxy;
    const s = proxy.stats();
    if (s.latencyMs > 0 || s.blackholed || s.refusing) repaired++;
    proxy.setLatency(0);
    proxy.heal();
    await proxy.accept().catch(() => {});
  }
  for (const child of pausedProcesses) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGCONT");
    repaired++;
  }

  const byKind = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  let injected = 0;
  for (const e of entries) {
    if (e.injectedAtMs === undefined) continue;
    injected++;
    byKind[e.step.fault]++;
  }
  return { seed: schedule.seed, startedAt, entries, injected, byKind, aborted: signal?.aborted ?? false, repaired };
}
