import type { ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";
import type { DurabilityOptions } from "@coordis/core";
import { tryWaitUntil } from "@coordis/testing";
import { type WorkerConfig, WorkerPool } from "../lib/worker-pool.js";
import { type ChaosWorker, reply, type Violations, type WorkerMessage } from "../lib/workers.js";
import { type Acquisition, checkLockHistory, FencedRegister } from "./lock-check.js";

/**
 * How many accepted sections must follow the heal (or the last failover) within the recovery time: progress has
 * really resumed, and even a run whose faults left little room (a short run with several Redis kills) has a history
 * worth checking.
 */
export const RECOVERY_SECTIONS = 10;

/** What a lock worker (workers/lock-worker.ts) is configured with. */
export interface LockWorkerConfig extends Record<string, unknown> {
  mode: "mutex" | "redlock";
  /** One URL (Mutex) or one per master (Redlock). */
  urls: string[];
  prefix: string;
  name: string;
  ttlMs: number;
  waitMs: number;
  /** A critical section "works" 0..holdMaxMs ms between its fenced read and its fenced write. */
  holdMaxMs: number;
  commandTimeoutMs: number;
  nodeTimeoutMs: number;
  seed: number;
  /** Optional durability setting of the lock (failover scenario). */
  durability?: DurabilityOptions;
}

/**
 * Stalls of lock holders ({@link FencedLockWorkers.stallHolders}): at most one every `everyMs`, each a SIGSTOP of
 * `pauseMs[0]..pauseMs[1]` ms (drawn with `random`), longer than the lease.
 */
export interface HolderStalls {
  readonly everyMs: number;
  readonly pauseMs: readonly [number, number];
  readonly random: () => number;
}

/**
 * The workload of the lock scenarios (lock-mutex, lock-redlock, lock-failover): `count` processes of
 * workers/lock-worker.ts acquire one lock again and again and do a fenced read-modify-write on this process's
 * {@link FencedRegister}; every acquisition they report (when requested, obtained, valid until, released) is kept for
 * {@link checkLockHistory}. A worker that crashes is a violation.
 */
export class FencedLockWorkers {
  readonly register = new FencedRegister();
  readonly pool: WorkerPool;
  /** Holders SIGSTOPped inside their critical section by {@link stallHolders}. */
  holderStalls = 0;
  readonly #violations: Violations;
  /** Every acquisition reported, in order (a worker given the same fence twice appears twice). */
  readonly #history: Acquisition[] = [];
  /** The latest acquisition of each worker and fence, for its release report. */
  readonly #acquisitions = new Map<string, Acquisition>();
  readonly #acquireFailed: Record<string, number> = {};
  #stalls: HolderStalls | undefined;
  #nextStallAt = 0;

  /** Spawns the processes at once; configure them with {@link start}. */
  constructor(count: number, violations: Violations) {
    this.#violations = violations;
    this.pool = new WorkerPool({
      file: "lock-worker.ts",
      count,
      crashes: violations,
      onMessage: (msg, worker) => this.#onMessage(msg, worker),
    });
  }

  /** Configures every worker and waits until each is connected. */
  start(config: (slot: number, incarnation: number) => LockWorkerConfig): Promise<void> {
    return this.pool.start(config as WorkerConfig);
  }

  /**
   * From now on (until called with `undefined`), SIGSTOPs a worker whose fenced read was just accepted, at most once
   * every `stalls.everyMs`, for longer than its lease: the lock passes to another worker while it sleeps, and its
   * write, once resumed, comes with a fence the register must refuse. A random pause of the fault schedule lands in
   * a critical section only now and then (a few times in 5 minutes); this makes the stale holder the fences exist for
   * happen in every run.
   */
  stallHolders(stalls: HolderStalls | undefined): void {
    this.#stalls = stalls;
    this.#nextStallAt = 0;
  }

  #maybeStall(child: ChildProcess): void {
    const stalls = this.#stalls;
    const now = performance.now();
    if (stalls === undefined || now < this.#nextStallAt || child.exitCode !== null || child.signalCode !== null) return;
    this.#nextStallAt = now + stalls.everyMs;
    const [min, max] = stalls.pauseMs;
    if (!child.kill("SIGSTOP")) return;
    this.holderStalls++;
    setTimeout(
      () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGCONT");
      },
      Math.round(min + stalls.random() * (max - min)),
    ).unref();
  }

  #onMessage(msg: WorkerMessage, worker: ChaosWorker): void {
    const id = `w${worker.slot}.${worker.child.pid}`;
    switch (msg.type) {
      case "acquire-failed":
        this.#acquireFailed[msg.code as string] = (this.#acquireFailed[msg.code as string] ?? 0) + 1;
        break;
      case "acquired": {
        const acquisition: Acquisition = {
          worker: id,
          fence: msg.fence as number,
          reqAt: msg.reqAt as number,
          gotAt: msg.gotAt as number,
          validUntil: msg.validUntil as number,
          releaseAt: undefined,
        };
        // Kept in a list, not only by worker and fence: the same fence handed to one worker twice must reach the
        // checker twice (a duplicate fence), not replace the first lease and its validity.
        this.#history.push(acquisition);
        this.#acquisitions.set(`${id}/${msg.fence}`, acquisition);
        break;
      }
      case "releasing": // sent before the release command (see lock-worker.ts)
      case "released": {
        const a = this.#acquisitions.get(`${id}/${msg.fence}`);
        if (a !== undefined) a.releaseAt ??= msg.releaseAt as number;
        break;
      }
      case "begin": {
        const answer = this.register.begin(id, msg.fence as number);
        // Stopped before the answer leaves: the worker reads it, sleeps through its "work" and writes once resumed.
        if (answer.accepted) this.#maybeStall(worker.child);
        reply(worker, msg, answer);
        break;
      }
      case "end":
        reply(worker, msg, { accepted: this.register.end(id, msg.fence as number, msg.value as number) });
        break;
    }
  }

  /**
   * Waits until `sections` more sections are accepted than now; records a `no-progress` violation (naming `after`,
   * e.g. "the faults were healed") when they do not come within `timeoutMs` (a fence that went back would leave every
   * write rejected).
   */
  async progress(sections: number, timeoutMs: number, after: string): Promise<void> {
    const before = this.register.writes;
    if (await tryWaitUntil(() => this.register.writes >= before + sections, timeoutMs)) return;
    this.#violations.add(
      "no-progress",
      `only ${this.register.writes - before} accepted sections within ${timeoutMs} ms after ${after} (register fence ${this.register.maxSeen})`,
    );
  }

  /**
   * Stops the workers and checks the history ({@link checkLockHistory}).
   * @returns the operations (acquisitions and failed acquires) and the details every lock scenario reports
   */
  async finish(): Promise<{ operations: number; details: Record<string, unknown> }> {
    this.#stalls = undefined;
    await this.pool.stop();
    const history = this.#history;
    const summary = checkLockHistory(this.register, history, this.#violations);
    return {
      operations: history.length + Object.values(this.#acquireFailed).reduce((n, c) => n + c, 0),
      details: {
        acquisitions: history.length,
        acquireFailed: this.#acquireFailed,
        ...summary,
        registerFence: this.register.maxSeen,
        holderStalls: this.holderStalls,
        respawns: this.pool.respawns,
        crashes: this.pool.crashes,
      },
    };
  }
}
