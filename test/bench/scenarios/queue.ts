import { performance } from "node:perf_hooks";
import { Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { type ConsumerLike, coordisExports, type EventLogModule } from "../coordis.js";
import type { LatencyResult, Scenario, ScenarioInstance, SetupContext, ThroughputResult } from "../types.js";

const GROUP = "work queue";
const BASELINE = "queue/raw-streams";
const WORKER_CONCURRENCY = 50;
const BATCH = 100;
const BLOCK_MS = 100;

/** A producer / consumer pair run end to end: jobs are numbered, `onDone(n)` fires when job n was processed. */
interface QueueDriver {
  /** Starts consuming a fresh, empty queue. */
  start(onDone: (n: number) => void): Promise<void>;
  /** Enqueues job `n`. */
  add(n: number): Promise<unknown>;
  /** Stops the consumer (unprocessed jobs stay behind; the next start uses a fresh queue). */
  stop(): Promise<void>;
}

function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * End-to-end measurements around a driver: jobs/s = jobs processed inside the window while `concurrency`
 * producers add jobs in a closed loop; latency = add → processed of one job at a time.
 */
function endToEnd(driver: QueueDriver): ScenarioInstance {
  let seq = 0;
  const waiters = new Map<number, () => void>();
  const resolveWaiter = (n: number) => {
    const w = waiters.get(n);
    if (w !== undefined) {
      waiters.delete(n);
      w();
    }
  };
  const processOne = async () => {
    const n = seq++;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`job ${n} not processed within 10 s`)), 10_000);
      waiters.set(n, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await driver.add(n);
    await done;
  };
  return {
    async throughput(durationMs, concurrency): Promise<ThroughputResult> {
      let open = false;
      let processed = 0;
      await driver.start((n) => {
        resolveWaiter(n);
        if (open) processed++;
      });
      // One job end to end before the window opens: the consumer is connected and polling.
      try {
        await processOne();
      } catch (err) {
        await driver.stop();
        throw err;
      }
      let errors = 0;
      let error: string | undefined;
      open = true;
      const start = performance.now();
      let end = start + durationMs;
      let counted = 0;
      const timer = setTimeout(() => {
        open = false;
        end = performance.now();
        counted = processed;
      }, durationMs);
      const producer = async () => {
        while (open) {
          try {
            await driver.add(seq++);
          } catch (err) {
            errors++;
            error ??= message(err);
            return;
          }
        }
      };
      await Promise.all(Array.from({ length: concurrency }, producer));
      if (open) {
        clearTimeout(timer);
        open = false;
        end = performance.now();
        counted = processed;
      }
      await driver.stop();
      return error === undefined
        ? { ops: counted, elapsedMs: end - start, errors }
        : { ops: counted, elapsedMs: end - start, errors, error };
    },
    async latency(durationMs): Promise<LatencyResult> {
      await driver.start(resolveWaiter);
      const samplesMs: number[] = [];
      const deadline = performance.now() + durationMs;
      try {
        for (;;) {
          const t0 = performance.now();
          if (t0 >= deadline) break;
          await processOne();
          samplesMs.push(performance.now() - t0);
        }
      } catch (err) {
        return { samplesMs, errors: 1, error: message(err) };
      } finally {
        await driver.stop();
      }
      return { samplesMs, errors: 0 };
    },
    async countOps(count) {
      await driver.start(resolveWaiter);
      try {
        for (let i = 0; i < count; i++) await processOne();
      } finally {
        await driver.stop();
      }
    },
  };
}

function bullmqDriver(ctx: SetupContext): QueueDriver {
  // BullMQ wants maxRetriesPerRequest: null on its connections (the worker issues blocking commands).
  const connection = ctx.client(ctx.single, { maxRetriesPerRequest: null });
  const workerConnection = ctx.client(ctx.single, { maxRetriesPerRequest: null });
  let round = 0;
  let queue: Queue | undefined;
  let worker: Worker | undefined;
  return {
    async start(onDone) {
      const name = `jobs-${round++}`;
      queue = new Queue(name, {
        connection,
        prefix: ctx.prefix,
        defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
      });
      worker = new Worker(
        name,
        async (job) => {
          onDone((job.data as { n: number }).n);
        },
        { connection: workerConnection, prefix: ctx.prefix, concurrency: WORKER_CONCURRENCY },
      );
      worker.on("error", () => {});
      await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);
    },
    add(n) {
      if (queue === undefined) throw new Error("queue not started");
      return queue.add("job", { n });
    },
    async stop() {
      await worker?.close(true);
      await queue?.close();
      worker = undefined;
      queue = undefined;
    },
  };
}

function rawStreamsDriver(ctx: SetupContext): QueueDriver {
  const producer = ctx.client();
  const consumerConnection = ctx.client();
  let round = 0;
  let key = "";
  let running = false;
  let loop: Promise<void> | undefined;
  let loopError: unknown;
  const consume = async (stream: string, onDone: (n: number) => void) => {
    while (running) {
      const reply = (await consumerConnection.xreadgroup(
        "GROUP",
        "workers",
        "c1",
        "COUNT",
        BATCH,
        "BLOCK",
        BLOCK_MS,
        "STREAMS",
        stream,
        ">",
      )) as [string, [string, string[]][]][] | null;
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) continue;
      for (const [, fields] of entries) onDone(Number(fields[1]));
      await consumerConnection.xack(stream, "workers", ...entries.map(([id]) => id));
    }
  };
  return {
    async start(onDone) {
      key = `${ctx.prefix}:jobs-${round++}`;
      await producer.xgroup("CREATE", key, "workers", "0", "MKSTREAM");
      running = true;
      loopError = undefined;
      loop = consume(key, onDone).catch((err: unknown) => {
        running = false;
        loopError = err;
      });
    },
    add: (n) => producer.xadd(key, "*", "n", String(n)),
    async stop() {
      running = false;
      await loop;
      if (loopError !== undefined) throw loopError;
    },
  };
}

/**
 * Coordis: `EventLog.append` per job, one consumer of a consumer group. `batchedAppend`: the log is built with
 * `batch: true`, so the appends the producers issue in one event-loop turn share one script call (the consumer side
 * is the same).
 */
async function coordisDriver(ctx: SetupContext, batchedAppend = false): Promise<QueueDriver> {
  const { EventLog } = await coordisExports<EventLogModule>("eventlog", ["EventLog"]);
  const redis: Redis = ctx.client();
  let round = 0;
  let log: InstanceType<EventLogModule["EventLog"]> | undefined;
  let consumer: ConsumerLike | undefined;
  return {
    async start(onDone) {
      log = new EventLog(
        redis,
        `jobs-${round++}`,
        batchedAppend ? { prefix: ctx.prefix, batch: true } : { prefix: ctx.prefix },
      );
      consumer = log.group("workers", { consumer: "c1" }).consume((entry) => onDone((entry.data as { n: number }).n), {
        concurrency: WORKER_CONCURRENCY,
        batch: BATCH,
        blockMs: BLOCK_MS,
      });
    },
    add(n) {
      if (log === undefined) throw new Error("queue not started");
      return log.append({ n });
    },
    async stop() {
      await consumer?.stop();
      consumer = undefined;
    },
  };
}

/** The Coordis row: plain appends, or micro-batched ones (`batch: true`) shared by the producers. */
function coordisRow(batched: boolean): Scenario {
  return {
    id: batched ? "queue/coordis-consumer-group-batched" : "queue/coordis-consumer-group",
    group: GROUP,
    name: `Coordis append${batched ? " (batched)" : ""} + consumer group (concurrency ${WORKER_CONCURRENCY}, batch ${BATCH})`,
    kind: "coordis",
    topology: "single",
    unit: "jobs",
    baseline: BASELINE,
    reference: "queue/bullmq",
    async setup(ctx) {
      return endToEnd(await coordisDriver(ctx, batched));
    },
  };
}

/**
 * Work queue end to end: BullMQ Queue.add + Worker, raw XADD + XREADGROUP/XACK batches, Coordis consumer group with
 * plain and with micro-batched appends.
 */
export function queueScenarios(): Scenario[] {
  return [
    {
      id: BASELINE,
      group: GROUP,
      name: `raw XADD + XREADGROUP/XACK batches of ${BATCH}`,
      kind: "raw",
      topology: "single",
      unit: "jobs",
      async setup(ctx) {
        return endToEnd(rawStreamsDriver(ctx));
      },
    },
    {
      id: "queue/bullmq",
      group: GROUP,
      name: `BullMQ Queue.add + Worker (concurrency ${WORKER_CONCURRENCY})`,
      kind: "peer",
      topology: "single",
      unit: "jobs",
      baseline: BASELINE,
      async setup(ctx) {
        return endToEnd(bullmqDriver(ctx));
      },
    },
    coordisRow(false),
    // The same consumer; the 50 producers share one log built with `batch: true` (micro-batched append).
    coordisRow(true),
  ];
}
