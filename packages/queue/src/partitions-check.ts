import { type RedisClient, runScript } from "@coordis/core";
import { PartitionsMismatchError } from "./errors.js";
import { queueMetaKey } from "./keys.js";
import { queueScripts } from "./scripts.generated.js";

/**
 * Records the queue's partition count on its first use (HSETNX) and compares it with `partitions`: one round trip.
 * @throws PartitionsMismatchError when the queue recorded another count
 */
export async function checkPartitions(
  redis: RedisClient,
  prefix: string,
  name: string,
  partitions: number,
): Promise<void> {
  const key = queueMetaKey(prefix, name);
  const stored = await runScript(redis, queueScripts.partitions, [key], [partitions]);
  if (stored !== partitions) throw new PartitionsMismatchError(name, stored, partitions, key);
}

/**
 * The check of one Queue: made once, before its first operation; a failure to reach Redis is not remembered (the
 * next operation checks again), a mismatch is (every operation rejects with it).
 */
export class PartitionsGate {
  readonly #run: () => Promise<void>;
  #pending: Promise<void> | undefined;
  #ok = false;

  constructor(run: () => Promise<void>) {
    this.#run = run;
  }

  /** Undefined once the check passed (no await on the hot path); otherwise the check's promise. */
  ready(): Promise<void> | undefined {
    if (this.#ok) return undefined;
    this.#pending ??= this.#run().then(
      () => {
        this.#ok = true;
      },
      (err: unknown) => {
        if (!(err instanceof PartitionsMismatchError)) this.#pending = undefined;
        throw err;
      },
    );
    return this.#pending;
  }
}
