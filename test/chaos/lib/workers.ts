import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { tryWaitUntil } from "@coordis/testing";

/** A message between the parent and a chaos worker (always an object with a `type`). */
export type WorkerMessage = Record<string, unknown> & { type: string };

/** A chaos worker: a child Node process running a TypeScript file from `test/chaos/workers/` with an IPC channel. */
export interface ChaosWorker {
  /** The child process (a fault schedule's `processes` target). */
  readonly child: ChildProcess;
  /** Stable slot number given by the scenario. */
  readonly slot: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** Sends a message; ignored when the channel is closed (the worker was killed). */
  send(msg: WorkerMessage): void;
  /** The last few KB of its stderr, for failure samples. */
  stderr(): string;
}

/**
 * Spawns `test/chaos/workers/<file>` as `node --conditions=@coordis/source --import tsx <file>` and routes its IPC
 * messages to `onMessage` (a worker gets its configuration by IPC: see {@link WorkerPool}). Workers exit when the
 * parent's IPC channel closes, so none outlives a run.
 */
export function spawnWorker(
  file: string,
  slot: number,
  onMessage: (msg: WorkerMessage, worker: ChaosWorker) => void,
): ChaosWorker {
  const path = fileURLToPath(new URL(`../workers/${file}`, import.meta.url));
  const child = spawn(process.execPath, ["--conditions=@coordis/source", "--import", "tsx", path], {
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-4096);
  });
  child.on("error", () => {});
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  const worker: ChaosWorker = {
    child,
    slot,
    exited,
    send(msg) {
      if (child.connected) child.send(msg, () => {});
    },
    stderr: () => err,
  };
  child.on("message", (msg) => onMessage(msg as WorkerMessage, worker));
  return worker;
}

/** Answers a worker's question (`ask()` in workers/ipc.ts): `{ type: "reply", id, ...fields }`. */
export function reply(worker: ChaosWorker, question: WorkerMessage, fields: Record<string, unknown>): void {
  worker.send({ ...fields, type: "reply", id: question.id });
}

/** SIGKILLs a worker (also a SIGSTOPped one) and waits for it to exit. */
export async function killWorker(worker: ChaosWorker): Promise<void> {
  if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
  await worker.exited;
}

/** Asks workers to stop (`{ type: "stop" }`), waits up to `graceMs` for them to exit, then SIGKILLs the rest. */
export async function stopWorkers(workers: readonly ChaosWorker[], graceMs = 3_000): Promise<void> {
  for (const w of workers) {
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGCONT");
    w.send({ type: "stop" });
  }
  await Promise.race([Promise.all(workers.map((w) => w.exited)), sleep(graceMs)]);
  await Promise.all(workers.map(killWorker));
}

/**
 * Waits until `readyCount()` reaches `workers.length` (each worker says "ready" once connected).
 * @throws Error naming the worker and its stderr when one exits first, or after `timeoutMs` (a loaded machine)
 */
export async function waitReady(
  workers: readonly ChaosWorker[],
  readyCount: () => number,
  timeoutMs = 120_000,
): Promise<void> {
  const allReady = () => {
    const dead = workers.find((w) => w.child.exitCode !== null || w.child.signalCode !== null);
    if (dead !== undefined) throw new Error(`worker ${dead.slot} exited during start: ${dead.stderr().slice(-1500)}`);
    return readyCount() >= workers.length;
  };
  if (!(await tryWaitUntil(allReady, { timeoutMs, intervalMs: 20 }))) {
    throw new Error(`only ${readyCount()} of ${workers.length} workers started`);
  }
}

/** Collects violations: counts all, keeps the first `limit` descriptions for the report. */
export class Violations {
  readonly samples: string[] = [];
  readonly byKind: Record<string, number> = {};
  #count = 0;

  readonly #limit: number;

  constructor(limit = 10) {
    this.#limit = limit;
  }

  /** Number of violations recorded. */
  get count(): number {
    return this.#count;
  }

  /** Records one violation of `kind`, described by `text`. */
  add(kind: string, text: string): void {
    this.#count++;
    this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
    if (this.samples.length < this.#limit) this.samples.push(`${kind}: ${text}`);
  }
}
