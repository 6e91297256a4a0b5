import type { Queue } from "@coordis/queue";
import { type ChaosWorker, reply, type Violations, type WorkerMessage } from "../lib/workers.js";

/** What the queue workers did, as {@link QueueJobsCheck} counted it. */
export interface QueueCounts {
  /** Adds Redis answered `duplicate: true` (a retried add that had been applied). */
  duplicates: number;
  /** Deliveries started (a worker's `start`). */
  deliveries: number;
  /** Effects the fenced register refused (a fence not above every one it accepted for that job). */
  refusedEffects: number;
  /** Completions a worker's Worker reported `refused`. */
  refusedCompletions: number;
}

/**
 * The parent's side of the queue scenarios' workload (workers/queue-worker.ts): the acknowledged adds, the fences
 * every delivery of a job started with, and a fenced register per job that accepts a delivery's effect only with a
 * fence above every one it accepted for that job. {@link check} is the final check: every acknowledged job completed
 * (none lost, none dead), each delivery of a job had its own fence, and the effect that stuck is the one of the
 * delivery Redis recorded as the completion (the job's result is its fence).
 */
export class QueueJobsCheck {
  /** Ids of the adds that were acknowledged. */
  readonly acked = new Set<string>();
  readonly counts: QueueCounts = { duplicates: 0, deliveries: 0, refusedEffects: 0, refusedCompletions: 0 };
  /** Effects accepted, all jobs together (progress). */
  effects = 0;
  /** Per job: the fences its deliveries started with, and the fences the register accepted, in order. */
  readonly #starts = new Map<string, number[]>();
  readonly #accepted = new Map<string, number[]>();
  /** Per worker process: deliveries started and outcomes reported (equal when it holds nothing). */
  readonly #busy = new Map<ChaosWorker, { started: number; settled: number }>();
  readonly #violations: Violations;

  constructor(violations: Violations) {
    this.#violations = violations;
  }

  /** A `WorkerPool` `onMessage` for queue workers: `start`, `effect` (answered) and `outcome`. */
  onMessage(msg: WorkerMessage, worker: ChaosWorker): void {
    const work = this.#busy.get(worker) ?? { started: 0, settled: 0 };
    this.#busy.set(worker, work);
    if (msg.type === "start") {
      work.started++;
      this.counts.deliveries++;
      const list = this.#starts.get(msg.jobId as string) ?? [];
      list.push(msg.fence as number);
      this.#starts.set(msg.jobId as string, list);
    } else if (msg.type === "effect") {
      const id = msg.jobId as string;
      const fence = msg.fence as number;
      const list = this.#accepted.get(id) ?? [];
      const ok = list.length === 0 || fence > (list.at(-1) as number);
      if (ok) {
        list.push(fence);
        this.#accepted.set(id, list);
        this.effects++;
      } else this.counts.refusedEffects++;
      reply(worker, msg, { accepted: ok });
    } else if (msg.type === "outcome") {
      // An outcome of a delivery that never started (its lease passed first: no `start`) settles none of the started.
      if (msg.started !== false) work.settled++;
      if (msg.outcome === "refused") this.counts.refusedCompletions++;
    }
  }

  /** Whether an effect of job `id` was accepted. */
  effected(id: string): boolean {
    return this.#accepted.has(id);
  }

  /** Whether every live worker is idle: each delivery it started has its outcome. */
  idle(): boolean {
    return [...this.#busy].every(
      ([w, work]) => w.child.exitCode !== null || w.child.signalCode !== null || work.started === work.settled,
    );
  }

  /** Jobs delivered more than once. */
  get redelivered(): number {
    return [...this.#starts.values()].filter((f) => f.length > 1).length;
  }

  /**
   * Checks every job of `ids` (the acknowledged adds unless given) through `reader`, and the dead letters.
   * @returns how many of the acknowledged adds are completed
   */
  async check(reader: Queue<number, number>, ids: readonly string[] = [...this.acked]): Promise<number> {
    const violations = this.#violations;
    let completed = 0;
    for (const id of ids) {
      const info = await reader.get(id);
      if (info?.state !== "completed") {
        violations.add("not-completed", `acknowledged ${id} is ${info === null ? "gone" : info.state}`);
        continue;
      }
      if (this.acked.has(id)) completed++;
      const fences = this.#starts.get(id) ?? [];
      if (new Set(fences).size !== fences.length) violations.add("fence-reused", `${id}: fences ${fences.join(",")}`);
      const stuck = (this.#accepted.get(id) ?? []).at(-1);
      if (stuck !== info.result) {
        violations.add(
          "effect",
          `${id}: effect of fence ${stuck} stuck, Redis recorded the completion of ${info.result}`,
        );
      }
    }
    const dead = (await reader.deadLetters({ limit: 10 })).jobs;
    for (const d of dead) violations.add("dead", `${d.id} died: ${d.error}`);
    return completed;
  }
}
