import { type CoordisEvent, type OperationEvent, type RedisClient, runScript } from "@coordis/core";
import { type Job, JobDeadError, Queue, UnrecoverableError, Worker } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queueKeys } from "../src/keys.js";
import { queueScripts } from "../src/scripts.generated.js";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-unrecoverable");

/** Operations and events a worker reports. */
function observed() {
  const processed: OperationEvent[] = [];
  const events: CoordisEvent[] = [];
  const observer = {
    onOperation: (op: OperationEvent) => void (op.op === "process" && processed.push(op)),
    onEvent: (e: CoordisEvent) => void events.push(e),
  };
  return { processed, events, observer };
}

/** An error of another installed copy of @coordis/queue: not this copy's class, but it carries the brand. */
class OtherCopyUnrecoverable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnrecoverableError";
  }
}
Object.defineProperty(OtherCopyUnrecoverable.prototype, Symbol.for("@coordis/queue.unrecoverable"), { value: true });

/** A subclass of another copy's class: its name is its own, the brand says what it is. */
class OtherCopyBadInput extends OtherCopyUnrecoverable {
  constructor(message: string) {
    super(message);
    this.name = "BadInput";
  }
}

/** Another library's error of that name (BullMQ's is `class UnrecoverableError extends Error`, named after it). */
class ForeignUnrecoverable extends Error {
  override name = "UnrecoverableError";
}

/** A subclass of this package's class. */
class BadInput extends UnrecoverableError {}

describe("a handler that throws UnrecoverableError", () => {
  const { worker, queue, redis, onClose } = onSharedServer(prefix);

  it.each([
    ["rejects with it", "async"],
    ["throws it synchronously", "sync"],
  ])("%s: the job is dead after this attempt, whatever attempts are left, reported as a dead job", async (_, how) => {
    const name = `dead-${how}`;
    const q = queue<string, string>(name);
    const { processed, events, observer } = observed();
    let runs = 0;
    const cause = new Error("row 12 has no email");
    const fail = (job: Job<string>) => {
      runs++;
      throw new UnrecoverableError(`bad input ${job.data}`, { cause });
    };
    const handler = how === "sync" ? fail : async (job: Job<string>) => fail(job);
    const w = new Worker<string, string>(redis(), name, handler, { prefix, schedules: false, observer });
    onClose(() => w.close({ timeoutMs: 1_000 }));
    await q.add("x", { id: "j", attempts: 5, backoff: { type: "fixed", delayMs: 0 } });

    const dead = await q.result("j", { timeoutMs: 10_000 }).catch((err: unknown) => err);
    expect(dead).toBeInstanceOf(JobDeadError);
    // Recorded as any failure's error is: the thrown error's "name: message".
    expect(dead).toMatchObject({ attempts: 1, lastError: "UnrecoverableError: bad input x" });
    expect(await q.get("j")).toMatchObject({
      state: "dead",
      attempts: 1,
      maxAttempts: 5,
      error: "UnrecoverableError: bad input x",
    });
    const { jobs } = await q.deadLetters();
    expect(jobs.map((j) => [j.id, j.error])).toEqual([["j", "UnrecoverableError: bad input x"]]);
    await waitUntil("the process report and the job-dead event", () => events.some((e) => e.type === "job-dead"));
    expect(processed.map((op) => [op.outcome, op.attributes?.jobId, op.error?.message])).toEqual([
      ["dead", "j", "UnrecoverableError: bad input x"],
    ]);
    const jobDead = events.filter((e) => e.type === "job-dead");
    expect(jobDead).toHaveLength(1);
    expect(jobDead[0]).toMatchObject({ attributes: { attempt: 1, jobId: "j" } });
    expect(jobDead[0]?.error?.message).toBe("UnrecoverableError: bad input x");
    expect(w.stats()).toMatchObject({ dead: 1, retried: 0, completed: 0 });
    expect(runs).toBe(1);
  });

  it("retryDead(id) gives the job a fresh set of attempts, as for any dead job", async () => {
    const name = "retry-dead";
    const q = queue<string, string>(name);
    const seen: Array<[number, number]> = [];
    let unrecoverable = true;
    worker<string, string>(name, async (job) => {
      seen.push([job.attempt, job.maxAttempts]);
      if (unrecoverable) throw new UnrecoverableError("upstream rejected the account");
      if (job.attempt < 3) throw new Error(`flaky ${job.attempt}`);
      return `done ${job.data}`;
    });
    await q.add("x", { id: "j", attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
    await expect(q.result("j", { timeoutMs: 10_000 })).rejects.toMatchObject({ code: "ERR_JOB_DEAD", attempts: 1 });
    // Fixed: retried by hand, the job has its 3 attempts again (the first two fail, the third completes).
    unrecoverable = false;
    expect(await q.retryDead("j")).toBe(true);
    await expect(q.result("j", { timeoutMs: 10_000 })).resolves.toBe("done x");
    expect(seen).toEqual([
      [1, 3],
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    expect(await q.get("j")).toMatchObject({ state: "completed", attempts: 3 });
  });

  it("is recognised when thrown as a subclass, from another copy of the package, or as another library's error of that name", async () => {
    const name = "recognised";
    const q = queue<string, string>(name);
    const runs = new Map<string, number>();
    const throwers: Record<string, () => unknown> = {
      subclass: () => new BadInput("subclass"),
      "other-copy": () => new OtherCopyUnrecoverable("other copy"),
      "other-copy-subclass": () => new OtherCopyBadInput("other copy subclass"),
      foreign: () => new ForeignUnrecoverable("foreign"),
      // Not unrecoverable: retried until its attempts are used up.
      plain: () => new Error("plain"),
      "name-getter-throws": () =>
        Object.defineProperty(new Error("name getter throws"), "name", {
          get() {
            throw new Error("no name");
          },
        }),
    };
    worker<string, string>(
      name,
      async (job) => {
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
        throw (throwers[job.id] as () => unknown)();
      },
      { concurrency: 6 },
    );
    for (const id of Object.keys(throwers))
      await q.add(id, { id, attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
    const attempts: Record<string, number> = {};
    for (const id of Object.keys(throwers)) {
      const err = await q.result(id, { timeoutMs: 10_000 }).catch((e: unknown) => e);
      expect(err, id).toBeInstanceOf(JobDeadError);
      attempts[id] = (err as JobDeadError).attempts;
    }
    expect(attempts).toEqual({
      subclass: 1,
      "other-copy": 1,
      "other-copy-subclass": 1,
      foreign: 1,
      plain: 3,
      "name-getter-throws": 3,
    });
    expect(Object.fromEntries(runs)).toEqual(attempts);
    expect((await q.get("subclass"))?.error).toBe("BadInput: subclass");
    expect((await q.get("other-copy-subclass"))?.error).toBe("BadInput: other copy subclass");
  });

  it("frees its group's slot: the next job of the group runs, and no slot is left counted", async () => {
    const name = "group";
    const q = queue<string, string>(name);
    const order: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        order.push(`${job.id}#${job.attempt}`);
        if (job.id === "a") throw new UnrecoverableError("a cannot succeed");
        return job.id;
      },
      { concurrency: 3, groups: { concurrency: 1 } },
    );
    await q.add("a", { id: "a", group: "g", attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
    await q.add("b", { id: "b", group: "g" });
    await expect(q.result("a", { timeoutMs: 10_000 })).rejects.toMatchObject({ code: "ERR_JOB_DEAD", attempts: 1 });
    await expect(q.result("b", { timeoutMs: 10_000 })).resolves.toBe("b");
    expect(order).toEqual(["a#1", "b#1"]);
    const k = queueKeys(prefix, name, 1)[0];
    expect(await redis().hget(k?.groups as string, "c:g")).toBeNull();
  });

  it("from a stale delivery (its lease expired and another delivery holds the job) is refused: the job is not killed", async () => {
    const name = "stale";
    const q = queue<string, string>(name);
    const deliveries: Job<string>[] = [];
    const releaseFirst = gate();
    const releaseSecond = gate();
    const w = worker<string, string>(
      name,
      async (job) => {
        deliveries.push(job);
        if (job.attempt === 1) {
          // Blocks the worker's event loop past the lease: the lease expires on the server, and the worker's next
          // fetch delivers the job again.
          const stalledUntil = performance.now() + 1_600;
          while (performance.now() < stalledUntil) {
            // stall
          }
          await releaseFirst.promise;
          throw new UnrecoverableError("stale verdict");
        }
        await releaseSecond.promise;
        return "second";
      },
      { concurrency: 2, leaseMs: 1_000 },
    );
    await q.add("x", { id: "x", attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
    await waitUntil("the second delivery runs", () => deliveries.length === 2, 10_000);
    const [first, second] = deliveries as [Job<string>, Job<string>];
    expect(second.fence).toBeGreaterThan(first.fence);
    // What a worker sends for an unrecoverable throw ("F": dead whatever attempts are left), with the stale fence:
    // refused by the finish script, which changes nothing.
    const k = queueKeys(prefix, name, 1)[0]?.all as string[];
    const args = [1, 100, 100, 60_000, "", "", 0.5, "x", first.fence, "FUnrecoverableError: stale verdict"];
    expect(await runScript(redis(), queueScripts.finish, k as never, args as never)).toEqual([0]);
    expect(await q.get("x")).toMatchObject({ state: "active", fence: second.fence, attempts: 1 });
    // The stale delivery's own throw: refused as well.
    releaseFirst.open();
    await waitUntil("the stale outcome refused", () => w.stats().refused === 1, 10_000);
    expect(w.stats()).toMatchObject({ dead: 0, running: 1 });
    expect(await q.get("x")).toMatchObject({ state: "active", fence: second.fence });
    releaseSecond.open();
    await expect(q.result("x", { timeoutMs: 10_000 })).resolves.toBe("second");
    expect(await q.get("x")).toMatchObject({ state: "completed", attempts: 2 });
  }, 30_000);
});

describe("UnrecoverableError on a server of the file's own", () => {
  let server: RedisServer;
  beforeAll(async () => {
    // MONITOR shows what each finish call carried: a server of this file's own.
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("buries the jobs that threw it and completes the others of the same finish call", async () => {
    const redis: RedisClient = server.client();
    const source = server.client() as Redis;
    await source.ping();
    const monitor = await source.monitor();
    const finishCalls: string[][] = [];
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === "evalsha" && args[1] === queueScripts.finish.sha1) finishCalls.push(args);
    });
    const name = "batched";
    const q = new Queue<string, string>(redis, name, { prefix });
    const release = gate();
    const started: string[] = [];
    const worker = new Worker<string, string>(
      redis,
      name,
      async (job) => {
        started.push(job.id);
        // Every handler ends in the same turn: their outcomes go in one finish call.
        await release.promise;
        if (job.id.startsWith("bad")) throw new UnrecoverableError(`cannot do ${job.id}`);
        return `did ${job.id}`;
      },
      { prefix, concurrency: 4, schedules: false },
    );
    try {
      const ids = ["bad-1", "good-1", "bad-2", "good-2"];
      for (const id of ids) await q.add(id, { id, attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
      await waitUntil("the four run", () => started.length === 4, 10_000);
      release.open();
      await expect(q.result("good-1", { timeoutMs: 10_000 })).resolves.toBe("did good-1");
      await expect(q.result("good-2", { timeoutMs: 10_000 })).resolves.toBe("did good-2");
      for (const id of ["bad-1", "bad-2"]) {
        await expect(q.result(id, { timeoutMs: 10_000 })).rejects.toMatchObject({
          code: "ERR_JOB_DEAD",
          attempts: 1,
          lastError: `UnrecoverableError: cannot do ${id}`,
        });
      }
      expect(worker.stats()).toMatchObject({ completed: 2, dead: 2, retried: 0 });
      // One finish call carried all four outcomes: 3 arguments per delivery, the outcome's kind first.
      await waitUntil("Redis ran the finish", () => finishCalls.length > 0, 5_000);
      const call = finishCalls.find((args) => args[16] === "4");
      expect(call, JSON.stringify(finishCalls)).toBeDefined();
      const outcomes = (call as string[]).slice(23).filter((_, i) => i % 3 === 2);
      expect(outcomes.map((o) => o.slice(0, 1)).sort()).toEqual(["F", "F", "c", "c"]);
    } finally {
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      monitor.disconnect();
      redis.disconnect();
    }
  }, 30_000);

  it("thrown after the signal aborted for a lost lease is an ordinary failed attempt, even when Redis still holds the fence", async () => {
    // A command timeout far longer than the lease: calls sent while Redis is stopped wait for it.
    const redis: RedisClient = server.client({ commandTimeoutMs: 60_000 });
    const name = "late-verdict";
    const q = new Queue<string, string>(redis, name, { prefix });
    const { processed, observer } = observed();
    const aborted = gate();
    const worker = new Worker<string, string>(
      redis,
      name,
      async (job) => {
        if (job.attempt > 1) return "second";
        await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
        aborted.open();
        throw new UnrecoverableError("late verdict");
      },
      // Two slots: the worker's fetch waits on its blocking connection, so no fetch of this worker reclaims the
      // expired lease before the late outcome reaches Redis.
      { prefix, leaseMs: 1_000, concurrency: 2, schedules: false, observer },
    );
    try {
      await q.add("a", { id: "a", attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
      await waitUntil("the job runs", async () => (await q.get("a"))?.state === "active", 10_000);
      server.pause();
      await aborted.promise;
      server.resume();
      // The delivery that lost its lease does not decide the job's fate: the job is retried and completes.
      await expect(q.result("a", { timeoutMs: 10_000 })).resolves.toBe("second");
      expect(await q.get("a")).toMatchObject({ state: "completed", attempts: 2 });
      expect(processed.map((op) => op.outcome)).not.toContain("dead");
    } finally {
      if (server.paused) server.resume();
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
    }
  }, 30_000);
});
