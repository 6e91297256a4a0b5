import { setTimeout as sleep } from "node:timers/promises";
import {
  blockingRead,
  closeBlockingConnection,
  openBlockingConnection,
  runScript,
  toCoordisError,
  whenReady,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import type { DeliveryRunner } from "./delivery-runner.js";
import type { PartitionKeys } from "./keys.js";
import { queueScripts } from "./scripts.generated.js";
import { type WorkerContext, workerEvent } from "./worker-context.js";
import type { ParsedWorker } from "./worker-options.js";

type FetchReply = [
  nowMs: number,
  paused: number,
  nextDueMs: number,
  lastReady: string,
  lastWake: string,
  died: string,
  ...job: (string | number)[],
];

/** Pause after a failed fetch, ms. */
export const FETCH_RETRY_MS = 250;
/** Most jobs one fetch asks for. */
const MAX_FETCH = 200;
/**
 * Most bytes of job records one fetch hands out (always at least one job): a reply of 200 jobs of 512 KiB (100 MB)
 * can outlast the client's command timeout, and the jobs of a fetch whose reply is lost wait out their lease with
 * that attempt counted. The jobs read beyond it keep their place for the next fetch, made at once.
 */
export const FETCH_MAX_BYTES = 4 * 1024 * 1024;

/**
 * A worker's fetch loops, one per partition: each fetch script call brings up to the free handler slots (each job with
 * a new fence and a lease on Redis server time) and starts them on the DeliveryRunner. Idle, a loop blocks on Redis
 * (XREAD on its own connection) until new work arrives or a delayed job becomes due; it never polls. A fetch that
 * answers once the worker is closing has its jobs handed back at once, never started. Internal.
 */
export class FetchLoops<T, R> {
  readonly #w: WorkerContext<T, R>;
  readonly #opts: ParsedWorker<T, R>;
  readonly #runner: DeliveryRunner<T, R>;
  /** Slots asked for by fetches in flight. */
  #reserved = 0;
  /** Each partition's blocking connection, opened when its loop first idles. */
  readonly #blocking: Array<Redis | Cluster | undefined>;
  #loops: Promise<void>[] = [];

  constructor(w: WorkerContext<T, R>, runner: DeliveryRunner<T, R>) {
    this.#w = w;
    this.#opts = w.opts;
    this.#runner = runner;
    this.#blocking = w.keys.map(() => undefined);
  }

  /** Starts the loops; each fetches once `checked` resolved true (the partition count matches the queue's). */
  start(checked: Promise<boolean>): void {
    this.#loops = this.#w.keys.map((k) => this.#loop(k, checked));
  }

  /** Closes the blocking connections (bounded: see disconnectWithin). */
  disconnect(): Promise<unknown> {
    return Promise.all(this.#blocking.map((conn) => closeBlockingConnection(conn)));
  }

  /** Resolves once every loop ended (the worker is closing). */
  done(): Promise<unknown> {
    return Promise.all(this.#loops);
  }

  async #loop(k: PartitionKeys, checked: Promise<boolean>): Promise<void> {
    const o = this.#opts;
    const closing = this.#w.closing;
    if (!(await checked)) return;
    while (!closing.aborted) {
      // Free handler slots: neither running nor asked for by a fetch in flight.
      const room = Math.min(o.concurrency - this.#runner.running - this.#reserved, MAX_FETCH);
      if (room <= 0) {
        await this.#runner.slotFreed();
        continue;
      }
      this.#reserved += room;
      const sentAt = performance.now();
      let reply: FetchReply;
      try {
        reply = await this.#fetch(k, room);
      } catch (err) {
        workerEvent(this.#w, "fetch-error", { error: toCoordisError(err) });
        await sleep(FETCH_RETRY_MS, undefined, { signal: closing }).catch(() => {});
        continue;
      } finally {
        this.#reserved -= room;
      }
      const [, , nextDueMs, lastReady, lastWake, died, ...jobs] = reply;
      if (died !== "") this.#reportDied(died);
      if (closing.aborted) {
        await this.#release(k, jobs);
        break;
      }
      let got = 0;
      for (let i = 0; i + 4 < jobs.length; i += 5) {
        got++;
        this.#runner.start(k.index, sentAt + o.leaseMs - o.driftMs, jobs, i);
      }
      // Slots a fetch reserved and did not fill are free for the other partitions' loops.
      if (got < room) this.#runner.wakeSlots();
      if (got < room && !closing.aborted && nextDueMs !== 0) {
        await this.#idle(k, nextDueMs < 0 ? o.blockMs : Math.min(o.blockMs, nextDueMs), lastReady, lastWake);
      }
    }
  }

  /** Reports the jobs the fetch buried (their last attempt's lease expired): "<attempts> <id>" lines. */
  #reportDied(died: string): void {
    for (const line of died.split("\n")) {
      const space = line.indexOf(" ");
      const attempt = Number(line.slice(0, space));
      const error = new Error(
        `LeaseExpired: the lease of attempt ${attempt} expired (its worker stopped, crashed or stalled)`,
      );
      workerEvent(this.#w, "job-dead", { attributes: { attempt, jobId: line.slice(space + 1) }, error });
    }
  }

  /** One fetch script call. */
  #fetch(k: PartitionKeys, count: number): Promise<FetchReply> {
    const o = this.#opts;
    return runScript(this.#w.redis, queueScripts.fetch, k.all as never, [
      count,
      o.leaseMs,
      o.groupLimit,
      o.groupRules,
      o.retention.dead,
      o.retention.deadAgeMs,
      Math.random(),
      "SPUBLISH",
      k.channel,
      FETCH_MAX_BYTES,
    ]);
  }

  /** Blocks until the partition's ready or wake stream gets an entry after the given ids, or `blockMs` passes. */
  async #idle(k: PartitionKeys, blockMs: number, lastReady: string, lastWake: string): Promise<void> {
    let conn = this.#blocking[k.index];
    if (conn === undefined) {
      conn = openBlockingConnection(this.#w.redis, this.#opts.blockMs);
      this.#blocking[k.index] = conn;
    }
    try {
      // Not connected yet, or reconnecting (a restart, a failover): wait for it, at most blockMs, rather than queue the
      // read behind it; the loop then fetches again.
      const ready = whenReady(conn, this.#w.closing, Math.max(1, blockMs));
      if (ready !== undefined) {
        await ready;
        return;
      }
      // Fails as soon as the connection closes: the read is not sent again on the next connection, and would
      // otherwise hold the loop until its command timeout (blockMs + 5 s) while jobs wait on the new master.
      await blockingRead(
        conn,
        conn.xread("COUNT", 1, "BLOCK", Math.max(1, blockMs), "STREAMS", k.ready, k.wake, lastReady, lastWake),
      );
    } catch (err) {
      if (this.#w.closing.aborted) return;
      workerEvent(this.#w, "idle-error", { error: toCoordisError(err) });
      await sleep(FETCH_RETRY_MS, undefined, { signal: this.#w.closing }).catch(() => {});
    }
  }

  /** Hands back the deliveries of a fetch that answered once the worker was closing (never started). */
  async #release(k: PartitionKeys, jobs: (string | number)[]): Promise<void> {
    const args: (string | number)[] = [];
    for (let i = 0; i + 4 < jobs.length; i += 5) args.push(String(jobs[i]), Number(jobs[i + 1]));
    if (args.length === 0) return;
    try {
      const n = await runScript(this.#w.redis, queueScripts.release, k.all as never, args as never);
      this.#w.stats.handedBack += n;
    } catch (err) {
      workerEvent(this.#w, "release-error", { error: toCoordisError(err) });
    }
  }
}
