import type { ChildProcess } from "node:child_process";
import type { FaultLogEntry } from "@coordis/testing";
import {
  type ChaosWorker,
  spawnWorker,
  stopWorkers,
  type Violations,
  type WorkerMessage,
  waitReady,
} from "./workers.js";

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** The worker's file in `test/chaos/workers/`. */
  readonly file: string;
  /** Worker processes, in slots 0..count-1. */
  readonly count: number;
  /** Every message but the pool's own (`loaded`, `ready`). */
  readonly onMessage?: (msg: WorkerMessage, worker: ChaosWorker) => void;
  /**
   * Records a worker that exits with an error code (not by a signal) as a `worker-crash` violation. Required: a crash
   * (an unhandled rejection in a primitive's background work, say) must fail the run, not leave the other workers to
   * finish the workload and the checks to pass.
   */
  readonly crashes: Violations;
}

/** Configuration of one incarnation of a slot (0 for the first process of the slot, then one more per respawn). */
export type WorkerConfig = (slot: number, incarnation: number) => Record<string, unknown>;

/**
 * The worker processes of a scenario, one per slot. They are spawned at construction, so they load their modules
 * while the scenario starts its servers; {@link start} sends each its configuration (by IPC, once it reports
 * `loaded`) and waits until every one reports `ready`. A slot SIGKILLed by the fault schedule is respawned with
 * {@link respawnKilled} into the same slot of {@link processes}, the schedule's `processes` target.
 */
export class WorkerPool {
  /** Every process spawned, respawns included (all are stopped by {@link stop}). */
  readonly all: ChaosWorker[] = [];
  /** The current process of each slot. */
  readonly processes: ChildProcess[] = [];
  readonly #options: WorkerPoolOptions;
  #config: WorkerConfig | undefined;
  /** Incarnation of each process that reported `loaded` and awaits its configuration. */
  readonly #loaded = new Map<ChaosWorker, number>();
  #ready = 0;
  #respawns = 0;
  #crashes = 0;

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
    for (let slot = 0; slot < options.count; slot++) this.processes.push(this.#spawn(slot, 0).child);
  }

  /** Processes respawned after a kill. */
  get respawns(): number {
    return this.#respawns;
  }

  /** Processes that exited with an error code. */
  get crashes(): number {
    return this.#crashes;
  }

  /**
   * Configures every slot and waits until each reports `ready`.
   * @throws Error naming the worker and its stderr when one exits first, or when they do not start in `timeoutMs`
   */
  async start(config: WorkerConfig, timeoutMs?: number): Promise<void> {
    this.#config = config;
    for (const [w, incarnation] of this.#loaded) this.#configure(w, incarnation);
    const current = this.all.slice(0, this.#options.count);
    await waitReady(current, () => this.#ready, timeoutMs);
  }

  /** A `runSchedule` `onInject`: respawns (and configures) a worker the schedule SIGKILLed, in the same slot. */
  readonly respawnKilled = ({ step }: FaultLogEntry): void => {
    if (step.target !== "process" || step.fault !== "kill") return;
    this.#respawns++;
    this.processes[step.index] = this.#spawn(step.index, this.#respawns).child;
  };

  /** Asks every process to stop, waits up to `graceMs`, then SIGKILLs the rest. */
  stop(graceMs?: number): Promise<void> {
    return stopWorkers(this.all, graceMs);
  }

  #spawn(slot: number, incarnation: number): ChaosWorker {
    const { file, onMessage, crashes } = this.#options;
    const w = spawnWorker(file, slot, (msg, worker) => {
      if (msg.type === "loaded") {
        if (this.#config === undefined) this.#loaded.set(worker, incarnation);
        else this.#configure(worker, incarnation);
      } else if (msg.type === "ready") this.#ready++;
      else onMessage?.(msg, worker);
    });
    w.child.once("exit", (code, signal) => {
      if (signal !== null || code === 0) return;
      this.#crashes++;
      crashes.add("worker-crash", `worker ${slot} exited with code ${code}: ${w.stderr().slice(-600)}`);
    });
    this.all.push(w);
    return w;
  }

  #configure(w: ChaosWorker, incarnation: number): void {
    this.#loaded.delete(w);
    w.send({ type: "config", config: (this.#config as WorkerConfig)(w.slot, incarnation) });
  }
}
