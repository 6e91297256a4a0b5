import { performance } from "node:perf_hooks";
import type { LatencyResult, ThroughputResult } from "./types.js";

/** A source of unique, increasing operation numbers shared by every loop of a run. */
export class Counter {
  #next = 0;
  /** The next number. */
  next(): number {
    return this.#next++;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * Closed loop: `concurrency` async callers each await one `op` after another for `durationMs`. Only operations
 * completed inside the window count; a caller stops at its first error (recorded).
 */
export async function closedLoop(
  op: (n: number) => Promise<unknown>,
  durationMs: number,
  concurrency: number,
  counter: Counter,
): Promise<ThroughputResult> {
  let ops = 0;
  let completed = 0;
  let errors = 0;
  let error: string | undefined;
  // Per-call latency under load (p50 / p99 at `concurrency` in flight): two clock reads and a push per call.
  const samplesMs: number[] = [];
  const start = performance.now();
  const end = start + durationMs;
  // The clock is read per call rather than a timer closing the window: an operation answered from memory (an L1
  // cache hit) resolves in a microtask, and a loop of those never lets a timer fire.
  const caller = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await op(counter.next());
        const t1 = performance.now();
        completed++;
        if (t1 <= end) {
          ops++;
          samplesMs.push(t1 - t0);
        }
      } catch (err) {
        errors++;
        error ??= message(err);
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  const elapsedMs = Math.min(performance.now(), end) - start;
  const result = { ops, completed, elapsedMs, errors, samplesMs };
  return error === undefined ? result : { ...result, error };
}

/** One caller, one operation at a time, for `durationMs`: per-operation latency in ms. Stops at the first error. */
export async function sequential(
  op: (n: number) => Promise<unknown>,
  durationMs: number,
  counter: Counter,
): Promise<LatencyResult> {
  const samplesMs: number[] = [];
  const deadline = performance.now() + durationMs;
  for (;;) {
    const t0 = performance.now();
    if (t0 >= deadline) break;
    try {
      await op(counter.next());
    } catch (err) {
      return { samplesMs, errors: 1, error: message(err) };
    }
    samplesMs.push(performance.now() - t0);
  }
  return { samplesMs, errors: 0 };
}

/** Nearest-rank percentile (`p` in 0..100) of unsorted samples; NaN when empty. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

/** Nearest-rank percentiles (`ps` in 0..100) of unsorted samples, one sort for all; NaN when empty. */
export function percentiles(samples: readonly number[], ps: readonly number[]): number[] {
  if (samples.length === 0) return ps.map(() => Number.NaN);
  const sorted = Float64Array.from(samples).sort();
  return ps.map(
    (p) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number,
  );
}

/** Median of the finite values; undefined when there are none. */
export function median(values: ReadonlyArray<number | undefined>): number | undefined {
  const finite = values.filter((v): v is number => v !== undefined && Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return undefined;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[mid] : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
}
