import { type BatchOutcome, randomToken, runScriptDurableOrThrow, runScriptDynamic } from "@coordis/core";
import { encodeArgument } from "./codec.js";
import { type PartitionKeys, partitionOf } from "./keys.js";
import { type JobOptions, parseJob } from "./options.js";
import type { QueueContext } from "./queue-context.js";
import { packRecord } from "./record.js";
import { queueScripts } from "./scripts.generated.js";

/** What `add` answers. */
export interface AddResult {
  /** The job's id (the one given, or a generated one: 128 random bits as 22 base64url characters). */
  readonly id: string;
  /** True when a job with this id existed already: nothing was created. */
  readonly duplicate: boolean;
}

/** One queued add on its way to a batch. */
export interface QueuedAdd {
  readonly id: string;
  /** The job's record, packed (see record.ts). */
  readonly record: Buffer;
  /** Where the add script puts the job: "<delayMs> <priority>". */
  readonly route: string;
}

/** Most jobs one add script call carries. */
const MAX_ADD_SCRIPT = 1_000;

/**
 * Validates one job's options on top of the queue's defaults and encodes its data: what the add script gets for it.
 * @throws InvalidArgumentError naming `optsArg` or `dataArg`
 */
export function prepareAdd<T, R>(
  q: QueueContext<T, R>,
  data: T,
  opts: JobOptions | undefined,
  dataArg: string,
  optsArg: string,
): QueuedAdd {
  const job = parseJob(optsArg, opts, q.defaults);
  const encoded = encodeArgument(q.opts.codec, dataArg, data, q.opts.maxPayloadBytes);
  return { id: job.id ?? randomToken(), record: packRecord(job, encoded), route: `${job.delayMs} ${job.priority}` };
}

/** One add script call for `items` of one partition (the micro-batcher's send). @returns each item's `duplicate` */
export async function sendAdds<T, R>(
  q: QueueContext<T, R>,
  items: readonly QueuedAdd[],
  partition: number,
): Promise<BatchOutcome<boolean>[]> {
  const k = q.keys[partition] as PartitionKeys;
  // Three arguments per job; a route equal to the previous job's is sent as '' (parsed once by the script).
  const args: (string | number | Buffer)[] = [items.length];
  let route: string | undefined;
  for (const item of items) {
    args.push(item.id, item.record, item.route === route ? "" : item.route);
    route = item.route;
  }
  const keys = [k.jobs, k.ready, k.delayed, k.prio, k.wake, k.done, k.cancelled] as const;
  const reply =
    q.durability === undefined
      ? await runScriptDynamic(q.redis, queueScripts.add, keys, args)
      : await runScriptDurableOrThrow(q.redis, queueScripts.add, keys, args as never, q.durability);
  return reply.map((dup) => ({ ok: true, value: dup === 1 }));
}

/** Sends prepared adds: one script call per partition and per 1,000 jobs, sent together. @returns results in order */
export async function sendAddsAll<T, R>(q: QueueContext<T, R>, prepared: readonly QueuedAdd[]): Promise<AddResult[]> {
  const byPartition = new Map<number, number[]>();
  prepared.forEach((item, i) => {
    const p = partitionOf(item.id, q.opts.partitions);
    const list = byPartition.get(p);
    if (list === undefined) byPartition.set(p, [i]);
    else list.push(i);
  });
  const out = new Array<AddResult>(prepared.length);
  const calls: Promise<void>[] = [];
  for (const [p, indexes] of byPartition) {
    for (let from = 0; from < indexes.length; from += MAX_ADD_SCRIPT) {
      const chunk = indexes.slice(from, from + MAX_ADD_SCRIPT);
      calls.push(
        sendAdds(
          q,
          chunk.map((i) => prepared[i] as QueuedAdd),
          p,
        ).then((outcomes) => {
          outcomes.forEach((o, j) => {
            const i = chunk[j] as number;
            out[i] = { id: (prepared[i] as QueuedAdd).id, duplicate: o.ok && o.value };
          });
        }),
      );
    }
  }
  await Promise.all(calls);
  return out;
}
