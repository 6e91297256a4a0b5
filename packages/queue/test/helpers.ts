import { connect, type RedisClient } from "@coordis/core";
import { type Job, Queue, Worker } from "@coordis/queue";
import { waitUntil } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, inject } from "vitest";

/** A promise with its resolve function, for handlers that wait for the test. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * Queues and workers a test file makes on one client (a getter: the client is made in beforeAll), with `prefix` and
 * no schedules; `closeAll()` (from afterEach) closes every one made (and runs every `onClose`) since the last call.
 */
export function tracked(redis: () => RedisClient, prefix: string) {
  const closers: Array<() => Promise<unknown>> = [];
  return {
    worker<T, R>(name: string, handler: (job: Job<T>) => Promise<R>, opts = {}): Worker<T, R> {
      const w = new Worker<T, R>(redis(), name, handler, { prefix, schedules: false, ...opts });
      closers.push(() => w.close({ timeoutMs: 1_000 }));
      return w;
    },
    queue<T, R = unknown>(name: string, opts = {}): Queue<T, R> {
      const q = new Queue<T, R>(redis(), name, { prefix, ...opts });
      closers.push(() => q.close());
      return q;
    },
    /** Runs `close` at the next closeAll(), after what is already tracked. */
    onClose: (close: () => Promise<unknown>) => void closers.push(close),
    closeAll: () => Promise.all(closers.splice(0).map((c) => c())),
  };
}

/**
 * {@link tracked} on one connection to the run's shared server, for a test file or `describe` block: the connection
 * is opened before its tests and closed after them, and what each test made is closed after it. `redis()` is the
 * connection (inside tests and hooks).
 */
export function onSharedServer(prefix: string) {
  let client: RedisClient | undefined;
  const redis = (): RedisClient => {
    if (client === undefined) throw new Error("onSharedServer(): the connection exists inside tests and hooks only");
    return client;
  };
  const made = tracked(redis, prefix);
  beforeAll(async () => {
    client = connect(inject("coordisRedisUrl"));
    await client.ping();
  });
  afterEach(async () => {
    await made.closeAll();
  });
  afterAll(() => client?.disconnect());
  return { ...made, redis };
}

/**
 * Queue `name` of `made` with a worker (concurrency 3, group limit 1) that records the ids it starts and runs job "a"
 * of group "g" until `release.open()`; resolves once "a" runs.
 */
export async function aRunningInGroup(made: Pick<ReturnType<typeof tracked>, "worker" | "queue">, name: string) {
  const q = made.queue<string, string>(name);
  const release = gate();
  const started: string[] = [];
  made.worker<string, string>(
    name,
    async (job) => {
      started.push(job.id);
      if (job.id === "a") await release.promise;
      return job.id;
    },
    { concurrency: 3, groups: { concurrency: 1 } },
  );
  await q.add("a", { id: "a", group: "g" });
  await waitUntil("a runs", () => started.includes("a"), 10_000);
  return { q, release, started };
}
