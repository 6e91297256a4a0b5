import type { Queue } from "@coordis/queue";
import { EventRecorder, WaitTimeoutError } from "@coordis/testing";
import { type ChaosWorker, reply, type Violations, type WorkerMessage } from "../lib/workers.js";

/** A message of a queue worker that the probes wait for: `hold` (a probe's delivery asks to go on) or `outcome`. */
export interface WorkerReport {
  readonly worker: ChaosWorker;
  readonly msg: WorkerMessage;
}

/** How long a probe waits for each step (a redelivery comes about one lease after the pause), ms. */
const STEP_TIMEOUT_MS = 30_000;

/**
 * The stale-worker probes of the queue scenario, run once every other job is done and every worker is idle, so each
 * step is an event the probe waits for, never a guess of timing. A probe job (negative data) is added; the worker
 * that starts it (`stale`) asks to go on (`hold`) and is SIGSTOPped at once, past its lease; the probe waits until
 * another worker starts the job again with a higher fence (the lease expired and the job was reclaimed). Then:
 *
 * - `completion`: `stale` resumes first. Its effect is the first one the register sees (accepted), its completion
 *   must be refused (the fence check of the finish script): violation `stale-completion` when its Worker reports
 *   anything but `refused`. Then the redelivery applies its effect (a higher fence, accepted) and completes.
 * - `effect`: the redelivery applies its effect and completes first; `stale` resumes afterwards and tries to apply
 *   its effect with the older fence: the register must refuse it (else the final check finds the stale effect stuck
 *   where Redis recorded the redelivery's completion), and its completion is refused too.
 *
 * Without the finish script's fence check the `completion` probe fails every run; without the register's fence check
 * the `effect` probe does.
 */
export class StaleWorkerProbes {
  readonly reports = new EventRecorder<WorkerReport>();
  /** The probe jobs added (each to be completed, with the effect of the delivery Redis recorded). */
  readonly ids: string[] = [];
  readonly #violations: Violations;

  constructor(violations: Violations) {
    this.#violations = violations;
  }

  /** Runs both probes; returns what each stale worker's completion came to. */
  async run(queue: Queue<number>): Promise<Record<string, string>> {
    const outcomes: Record<string, string> = {};
    for (const [i, kind] of (["completion", "effect"] as const).entries()) {
      const id = `probe-${kind}`;
      this.ids.push(id);
      try {
        outcomes[kind] = await this.#probe(queue, id, -1 - i, kind);
      } catch (err) {
        this.#violations.add("probe", `${id}: ${err instanceof WaitTimeoutError ? err.message : String(err)}`);
      }
    }
    return outcomes;
  }

  async #probe(queue: Queue<number>, id: string, data: number, kind: "completion" | "effect"): Promise<string> {
    const from = this.reports.items.length;
    await queue.add(data, { id });
    const first = await this.#next((r) => r.msg.type === "hold" && r.msg.jobId === id, from, `${id} to start`);
    const stale = first.worker;
    stale.child.kill("SIGSTOP");
    const fence = first.msg.fence as number;
    const second = await this.#next(
      (r) => r.msg.type === "hold" && r.msg.jobId === id && (r.msg.fence as number) > fence,
      from,
      `${id} to be redelivered after the lease of fence ${fence} expired`,
    );
    const outcomeOf = (w: ChaosWorker, since: number) =>
      this.#next((r) => r.msg.type === "outcome" && r.worker === w, since, `the outcome of ${id} on worker ${w.slot}`);
    let staleOutcome: string;
    if (kind === "completion") {
      const since = this.reports.items.length;
      stale.child.kill("SIGCONT");
      reply(stale, first.msg, {});
      staleOutcome = (await outcomeOf(stale, since)).msg.outcome as string;
      const next = this.reports.items.length;
      reply(second.worker, second.msg, {});
      await outcomeOf(second.worker, next);
    } else {
      const since = this.reports.items.length;
      reply(second.worker, second.msg, {});
      await outcomeOf(second.worker, since);
      const next = this.reports.items.length;
      stale.child.kill("SIGCONT");
      reply(stale, first.msg, {});
      staleOutcome = (await outcomeOf(stale, next)).msg.outcome as string;
    }
    if (staleOutcome !== "refused") {
      this.#violations.add(
        "stale-completion",
        `${id}: worker ${stale.slot}, paused past its lease (fence ${fence}), completed the job after it was ` +
          `redelivered (fence ${second.msg.fence as number}): its Worker reported ${staleOutcome}, not refused`,
      );
    }
    return staleOutcome;
  }

  #next(predicate: (r: WorkerReport) => boolean, from: number, what: string): Promise<WorkerReport> {
    return this.reports.waitFor(predicate, { from, what, timeoutMs: STEP_TIMEOUT_MS });
  }
}
