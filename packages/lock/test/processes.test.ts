import { connect, type RedisClient } from "@coordis/core";
import { Mutex, tickHistory } from "@coordis/lock";
import { spawnWorker, testPrefix, type WorkerProcess } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
const WORKER = new URL("./fixtures/worker.ts", import.meta.url);

/** The protected resource: accepts a write only with a fence above every fence it accepted before. */
class FencedRegister {
  lastFence = 0;
  readonly accepted: number[] = [];
  rejected = 0;
  write(fence: number): boolean {
    if (fence <= this.lastFence) {
      this.rejected++;
      return false;
    }
    this.lastFence = fence;
    this.accepted.push(fence);
    return true;
  }
}

type Msg = Record<string, unknown> & { type: string };
type Route = (msg: Msg, w: WorkerProcess) => void;

/** Waits until `count` workers sent a message of `type` (an "error" message fails at once); returns them. */
function collect(
  workers: readonly WorkerProcess[],
  type: string,
  onOther: Route = () => {},
): Promise<Map<WorkerProcess, Msg>> {
  return new Promise((resolve, reject) => {
    const got = new Map<WorkerProcess, Msg>();
    route = (msg, w) => {
      if (msg.type === "error") reject(new Error(`worker ${w.pid}: ${String(msg.message)}`));
      else if (msg.type === type) {
        got.set(w, msg);
        if (got.size === workers.length) resolve(got);
      } else onOther(msg, w);
    };
  });
}

let route: Route = () => {};

describe("locks across processes (8 replicas, separate connections)", () => {
  let redis: RedisClient;
  let workers: WorkerProcess[];
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
    const all: WorkerProcess[] = [];
    const ready = new Promise<void>((resolve) => {
      let n = 0;
      route = (msg) => {
        if (msg.type === "ready" && ++n === 8) resolve();
      };
    });
    for (let i = 0; i < 8; i++) {
      all.push(spawnWorker(WORKER, [inject("coordisRedisUrl"), prefix], (msg, w) => route(msg as Msg, w)));
    }
    await ready;
    workers = all;
  });
  afterAll(async () => {
    for (const w of workers ?? []) {
      w.command({ type: "exit" });
      setTimeout(() => w.child.kill("SIGKILL"), 5_000).unref();
    }
    await Promise.all((workers ?? []).map((w) => w.exited));
    redis.disconnect();
  });

  it("8 processes x 100 acquisitions: no overlapping critical sections, strictly increasing accepted fences", async () => {
    const register = new FencedRegister();
    let inside: number | null = null;
    let overlaps = 0;
    let entries = 0;
    const done = collect(workers, "contended", (msg, w) => {
      if (msg.type === "enter") {
        if (inside !== null) overlaps++;
        inside = w.pid;
        entries++;
        register.write(msg.fence as number);
      } else if (msg.type === "exit" && inside === w.pid) {
        inside = null;
      }
      w.reply({ ok: true });
    });
    for (const w of workers) w.command({ type: "contend", name: "contended", iterations: 100, ttlMs: 5_000 });
    const results = await done;
    expect([...results.values()].map((m) => m.lost)).toEqual(Array(8).fill(0));
    expect(entries).toBe(8 * 100);
    expect(overlaps).toBe(0);
    expect(register.rejected).toBe(0);
    expect(register.accepted).toHaveLength(8 * 100);
    for (let i = 1; i < register.accepted.length; i++) {
      expect(register.accepted[i]).toBeGreaterThan(register.accepted[i - 1] as number);
    }
  });

  it("a holder paused (SIGSTOP) past its TTL loses: another gets a higher fence; resumed, it sees signal.aborted, its write is rejected and release() is false", async () => {
    const register = new FencedRegister();
    const holder = workers[0] as WorkerProcess;
    const mutex = new Mutex(redis, "paused", { prefix, ttlMs: 5_000 });
    let holderFence = 0;
    let frozen!: () => void;
    const acquired = new Promise<void>((r) => (frozen = r));
    const report = collect([holder], "held", (msg, w) => {
      if (msg.type === "acquired") {
        holderFence = msg.fence as number;
        // Freeze the holder while it waits for our reply (it cannot go on before we answer).
        process.kill(w.pid, "SIGSTOP");
        frozen();
      } else if (msg.type === "write") {
        w.reply({ accepted: register.write(msg.fence as number) });
      }
    });
    holder.command({ type: "hold", name: "paused", ttlMs: 400 });
    try {
      await acquired;
      // The paused holder's 400 ms lease expires in Redis; we get the lock with a higher fence and write.
      const lease = await mutex.acquire({ waitMs: 5_000 });
      expect(lease.fence).toBeGreaterThan(holderFence);
      expect(register.write(lease.fence)).toBe(true);
      process.kill(holder.pid, "SIGCONT");
      holder.reply({ go: true });
      const seen = (await report).get(holder);
      expect(seen).toMatchObject({ aborted: true, lostError: true, accepted: false, released: false });
      expect(register.accepted).toEqual([lease.fence]);
      expect(await lease.release()).toBe(true);
    } finally {
      process.kill(holder.pid, "SIGCONT");
    }
  });

  it("runOncePerTick: 5 replicas with skewed starts (some after the run finished) run the tick exactly once", async () => {
    const replicas = workers.slice(0, 5);
    const done = collect(replicas, "ticked");
    [0, 150, 300, 700, 1_200].forEach((skewMs, i) => {
      replicas[i]?.command({ type: "tick", job: "nightly", tick: 1000, skewMs, fnMs: 400 });
    });
    const results = [...(await done).values()] as Array<Msg & { ran: boolean; state: string; owner: string }>;
    const ran = results.filter((r) => r.ran);
    expect(ran).toHaveLength(1);
    expect(await redis.get(`${prefix}:runs:{nightly}:1000`)).toBe("1");
    // Every replica agrees on who ran it, and the late ones saw it finished.
    expect(new Set(results.map((r) => r.owner)).size).toBe(1);
    expect(results.some((r) => !r.ran && r.state === "ok")).toBe(true);
    const history = await tickHistory(redis, "nightly", { prefix });
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ tick: 1000, ok: true, attempt: 1, owner: ran[0]?.owner });
    expect(history[0]?.endMs).toBeGreaterThanOrEqual(history[0]?.startMs as number);
  });
});
