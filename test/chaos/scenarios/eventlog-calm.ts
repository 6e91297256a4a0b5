import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type FaultProxy, type RedisServer, startProxy, tryWaitUntil } from "@coordis/testing";
import { WorkerPool } from "../lib/worker-pool.js";
import type { Violations } from "../lib/workers.js";

/** Processes of the calm phase, each with a live consumer (a group of its own) and a shared-group consumer. */
const CALM_CONSUMERS = 3;
/** Entries per burst of the calm phase. */
const BURST = 20;
/**
 * After a burst, every live consumer must have handled all of it within this time of its append, ms (a stalled one
 * never does). Judged by the handling processes' own clock (the entry id's server time to the handler's start), so
 * this process being busy with the fault phase's checks cannot make a consumer look stalled.
 */
const LIVENESS_MS = 10_000;
/** How long this process waits for the reports of a burst beyond LIVENESS_MS (its own event loop may lag), ms. */
const REPORT_GRACE_MS = 30_000;
/** claimIdleMs of the calm phase's shared group; its handlers run 50–70% of it. */
const SHARED_CLAIM_IDLE_MS = 1_000;
/** Every entry whose number is a multiple of this fails its first delivery in the shared group. */
const FAIL_EVERY = 3;
/** Interval of the calm phase's steady stream, ms. */
const STREAM_INTERVAL_MS = 120;
/** The shared group must have handled every entry within this time after the last one, ms. */
const DRAIN_MS = 60_000;

/** What the calm phase reports (scenario details). */
export interface CalmSummary {
  calmBursts: number;
  calmIdleMs: number;
  calmEntries: number;
  calmStarts: number;
  calmFailures: number;
  calmDuplicates: number;
  /** Longest time from a burst entry's append to a live consumer's handler, ms. */
  calmMaxLagMs: number;
}

/**
 * The calm phase of the event-log scenario: no faults, every consumer alive, 5 ms (± 2) of latency on every
 * connection. `CALM_CONSUMERS` processes (workers/eventlog-live.ts) each run a live consumer in a group of its own
 * (claimIdleMs 20, blockMs 10) and a consumer of one shared group (claimIdleMs 1 s, handlers of 500–700 ms, every 3rd
 * entry failing its first delivery). Bursts of `BURST` entries follow idle periods much longer than claimIdleMs and
 * blockMs, then a steady stream of entries every `STREAM_INTERVAL_MS` keeps the shared group busy while it redelivers
 * the failed ones. Checked: after each burst, every live consumer handles all of it within `LIVENESS_MS` (violation
 * `consumer-stalled`); every entry is handled by the shared group (`not-processed`), and none more often than its
 * failed deliveries + 1 (`duplicate-handling`).
 *
 * The processes are spawned at construction (they load while the fault phase runs); {@link run} configures them.
 */
export class CalmPhase {
  readonly #pool: WorkerPool;
  /** Per live consumer: entry number -> ms from its append to its handler (the first time). */
  readonly #liveSeen = Array.from({ length: CALM_CONSUMERS }, () => new Map<number, number>());
  #maxLagMs = 0;
  /** Entry id -> slots whose handler started it. */
  readonly #starts = new Map<string, number[]>();
  readonly #failures = new Map<string, number>();
  readonly #done = new Set<string>();

  /** `violations` records a calm-phase process that crashes (`worker-crash`). */
  constructor(violations: Violations) {
    this.#pool = new WorkerPool({
      file: "eventlog-live.ts",
      count: CALM_CONSUMERS,
      crashes: violations,
      onMessage: (msg) => {
        if (msg.type === "live") {
          const seen = this.#liveSeen[msg.slot as number];
          if (seen !== undefined && !seen.has(msg.n as number)) seen.set(msg.n as number, msg.lagMs as number);
        } else if (msg.type === "shared") {
          const id = msg.entryId as string;
          this.#starts.set(id, [...(this.#starts.get(id) ?? []), msg.slot as number]);
        } else if (msg.type === "shared-failed") {
          const id = msg.entryId as string;
          this.#failures.set(id, (this.#failures.get(id) ?? 0) + 1);
        } else if (msg.type === "shared-done") this.#done.add(msg.entryId as string);
      },
    });
  }

  /** Stops the processes (idempotent; {@link run} does it too). */
  stop(): Promise<void> {
    return this.#pool.stop(0);
  }

  /**
   * Runs the phase on log `name` of `server` (through a latency proxy of its own) for a run of `durationMs`: gets
   * ready at once, starts the bursts once `after` resolves (so they do not compete with a load phase for the CPU).
   */
  async run(context: {
    after: Promise<unknown>;
    server: RedisServer;
    prefix: string;
    name: string;
    seed: number;
    durationMs: number;
    violations: Violations;
    log: (line: string) => void;
  }): Promise<CalmSummary> {
    const { server, prefix, name, seed, durationMs, violations } = context;
    const bursts = Math.min(20, Math.max(3, Math.round(durationMs / 2_000)));
    const idleMs = Math.min(2_000, Math.max(400, Math.round(durationMs / 10)));
    const streamEntries = Math.min(500, Math.max(20, Math.round(durationMs / 120)));
    let proxy: FaultProxy | undefined;
    let client: RedisClient | undefined;
    let entries = 0;
    try {
      proxy = await startProxy({ target: server, seed: seed + 1 });
      proxy.setLatency(5, 2);
      const url = proxy.url;
      await this.#pool.start((slot) => ({
        url,
        prefix,
        name,
        slot,
        sharedClaimIdleMs: SHARED_CLAIM_IDLE_MS,
        failEvery: FAIL_EVERY,
      }));
      client = connect(url, { commandTimeoutMs: 5_000 });
      const producer = new EventLog<{ n: number }>(client, name, { prefix, batch: true });
      await context.after;
      for (let burst = 0; burst < bursts; burst++) {
        // The idle period is the workload: the consumers' reads come back empty and their claims bring nothing.
        await sleep(idleMs);
        const first = entries;
        entries += BURST;
        await Promise.all(Array.from({ length: BURST }, (_, i) => producer.append({ n: first + i })));
        await this.#checkBurst(burst, first, idleMs, violations);
      }
      // A steady stream, a little less than the shared group handles (3 × 2 slots of 600 ms handlers: 10 per second),
      // so consumers have free slots and blocked reads: reads bring new entries while claims bring the failed ones
      // back, and an entry that waited in its consumer after delivery would age past claimIdleMs in its handler.
      for (let i = 0; i < streamEntries; i++) {
        await producer.append({ n: entries++ });
        await sleep(STREAM_INTERVAL_MS);
      }
      if (!(await tryWaitUntil(() => this.#done.size >= entries, DRAIN_MS))) {
        violations.add("not-processed", `the shared group handled ${this.#done.size} of ${entries} entries`);
      }
    } finally {
      await this.#pool.stop();
      client?.disconnect();
      await proxy?.close();
    }
    let duplicates = 0;
    for (const [id, by] of this.#starts) {
      if (by.length <= (this.#failures.get(id) ?? 0) + 1) continue;
      duplicates++;
      violations.add(
        "duplicate-handling",
        `entry ${id} was started ${by.length} times (consumers ${by.join(", ")}) with ${this.#failures.get(id) ?? 0} ` +
          `failure(s), every consumer alive and every handler shorter than claimIdleMs`,
      );
    }
    context.log(
      `calm phase: ${bursts} bursts of ${BURST} after ${idleMs} ms idle and ${streamEntries} streamed, ` +
        `${this.#starts.size} entries started, ${duplicates} handled twice; a burst's entry reached every live ` +
        `consumer within ${this.#maxLagMs} ms of its append`,
    );
    return {
      calmBursts: bursts,
      calmIdleMs: idleMs,
      calmEntries: entries,
      calmStarts: [...this.#starts.values()].reduce((sum, by) => sum + by.length, 0),
      calmFailures: [...this.#failures.values()].reduce((a, b) => a + b, 0),
      calmDuplicates: duplicates,
      calmMaxLagMs: this.#maxLagMs,
    };
  }

  /**
   * Waits until every live consumer reported the burst of entries first..first+BURST-1; a violation per one that did
   * not handle all of it within LIVENESS_MS of the appends.
   */
  async #checkBurst(burst: number, first: number, idleMs: number, violations: Violations): Promise<void> {
    /** Entries of the burst the slot handled within LIVENESS_MS of their append. */
    const inTime = (slot: number) => {
      let count = 0;
      for (let n = first; n < first + BURST; n++) {
        const lag = this.#liveSeen[slot]?.get(n);
        if (lag !== undefined && lag <= LIVENESS_MS) count++;
      }
      return count;
    };
    const reported = (slot: number) => {
      let count = 0;
      for (let n = first; n < first + BURST; n++) if (this.#liveSeen[slot]?.has(n)) count++;
      return count;
    };
    await tryWaitUntil(
      () => this.#liveSeen.every((_, slot) => reported(slot) === BURST),
      LIVENESS_MS + REPORT_GRACE_MS,
    );
    for (let slot = 0; slot < CALM_CONSUMERS; slot++) {
      for (let n = first; n < first + BURST; n++)
        this.#maxLagMs = Math.max(this.#maxLagMs, this.#liveSeen[slot]?.get(n) ?? 0);
      if (inTime(slot) === BURST) continue;
      violations.add(
        "consumer-stalled",
        `live consumer ${slot} handled ${inTime(slot)} of the ${BURST} entries of burst ${burst} within ` +
          `${LIVENESS_MS} ms of their append (${reported(slot)} at all), after an idle period of ${idleMs} ms`,
      );
    }
  }
}
