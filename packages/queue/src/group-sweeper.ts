import { setTimeout as sleep } from "node:timers/promises";
import { runScript, toCoordisError } from "@coordis/core";
import type { PartitionKeys } from "./keys.js";
import { queueScripts } from "./scripts.generated.js";
import { type WorkerContext, workerEvent } from "./worker-context.js";

/** Pause between two passes over a partition's group rate-limit state, ms. */
export const GROUP_SWEEP_MS = 5_000;
/** Pause between two calls of one pass, ms (a pass over many groups is spread out instead of hogging Redis). */
const STEP_MS = 50;
/** Fields one call looks at (HSCAN COUNT hint). */
const STEP_FIELDS = 200;

/**
 * Deletes the rate-limit state of groups whose every rule entry has expired, in every partition: without it, the
 * groups hash would keep a field for every group ever rate-limited. Runs in workers configured with
 * `groups.rateLimit` (the ones that write that state): one scan call per partition every {@link GROUP_SWEEP_MS}
 * (more while a pass goes on). Deleting an expired entry changes no decision: a group without state reads the same.
 * Internal.
 */
export class GroupSweeper {
  readonly #w: WorkerContext<unknown, unknown>;
  #loops: Promise<void>[] = [];

  constructor(w: WorkerContext<unknown, unknown>) {
    this.#w = w;
  }

  start(): void {
    this.#loops = this.#w.keys.map((k) => this.#loop(k));
  }

  /** Resolves once no call is in flight (the worker's `closing` signal stops the loops). */
  async stop(): Promise<void> {
    await Promise.all(this.#loops);
  }

  async #loop(k: PartitionKeys): Promise<void> {
    const signal = this.#w.closing;
    let cursor = "0";
    while (!signal.aborted) {
      let pause = GROUP_SWEEP_MS;
      try {
        const [next] = await runScript(this.#w.redis, queueScripts.groupsSweep, [k.groups], [cursor, STEP_FIELDS]);
        cursor = String(next);
        if (cursor !== "0") pause = STEP_MS;
      } catch (err) {
        workerEvent(this.#w, "group-sweep-error", { error: toCoordisError(err) });
      }
      await sleep(pause, undefined, { signal, ref: false }).catch(() => {});
    }
  }
}
