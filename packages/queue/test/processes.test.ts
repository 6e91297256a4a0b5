import { connect, type RedisClient } from "@coordis/core";
import { Queue, Worker } from "@coordis/queue";
import { spawnWorker, testPrefix, type WorkerProcess, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue");
const WORKER = new URL("./fixtures/worker.ts", import.meta.url);
type Msg = Record<string, unknown> & { type: string };

/** The external system the jobs write to: per job, accepts a write only with a fence above every one it accepted. */
class FencedRegister {
  readonly accepted = new Map<string, number[]>();
  rejected = 0;
  write(id: string, fence: number): boolean {
    const list = this.accepted.get(id) ?? [];
    if (list.length > 0 && fence <= (list.at(-1) as number)) {
      this.rejected++;
      return false;
    }
    list.push(fence);
    this.accepted.set(id, list);
    return true;
  }
}

describe("workers in separate processes", () => {
  let redis: RedisClient;
  const children: WorkerProcess[] = [];
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(async () => {
    for (const c of children) {
      try {
        process.kill(c.pid, "SIGCONT");
      } catch {}
      if (c.child.connected) c.command({ type: "exit" });
      setTimeout(() => c.child.kill("SIGKILL"), 5_000).unref();
    }
    await Promise.all(children.map((c) => c.exited));
    redis.disconnect();
  });

  function spawn(
    name: string,
    register: FencedRegister,
    onMsg: (m: Msg, c: WorkerProcess) => void,
    args: string[],
  ): Promise<WorkerProcess> {
    return new Promise((resolve) => {
      const child = spawnWorker(WORKER, [inject("coordisRedisUrl"), prefix, name, ...args], (raw, c) => {
        const m = raw as Msg;
        if (m.type === "ready") resolve(c);
        else if (m.type === "write")
          c.reply({ ask: m.ask, accepted: register.write(m.id as string, m.fence as number) });
        onMsg(m, c);
      });
      children.push(child);
    });
  }

  it("3 worker processes, one SIGKILLed mid-run: every job completes, none is lost, each job's accepted fences grow", async () => {
    const name = "kill";
    const queue = new Queue<number>(redis, name, { prefix });
    const register = new FencedRegister();
    const starts = new Map<string, number[]>();
    let started = 0;
    const victimStarted = new Set<string>();
    let victim: WorkerProcess | undefined;
    const onMsg = (m: Msg, c: WorkerProcess) => {
      if (m.type !== "start") return;
      started++;
      if (c === victim) victimStarted.add(m.id as string);
      const list = starts.get(m.id as string) ?? [];
      list.push(m.fence as number);
      starts.set(m.id as string, list);
    };
    // The victim's handlers never finish on their own: whatever it started is still running when it is killed.
    victim = await spawn(name, register, onMsg, ["4", "1500", "600000"]);
    await Promise.all([0, 1].map(() => spawn(name, register, onMsg, ["4", "1500", "20"])));
    const n = 150;
    const ids = (await queue.addMany(Array.from({ length: n }, (_, i) => ({ data: i })))).map((r) => r.id);
    await waitUntil(
      "a third of the jobs started, some by the victim",
      () => started >= n / 3 && victimStarted.size > 0,
      30_000,
    );
    victim.child.kill("SIGKILL");
    await victim.exited;
    await waitUntil("every job completed", async () => (await queue.counts()).completed === n, 60_000);
    for (const id of ids) {
      const info = await queue.get(id);
      expect(info?.state).toBe("completed");
      const accepted = register.accepted.get(id) ?? [];
      expect(accepted.length).toBeGreaterThanOrEqual(1);
      const fences = starts.get(id) ?? [];
      for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1] as number);
    }
    // The killed worker's jobs were reclaimed after their lease and run again with higher fences.
    for (const id of victimStarted) expect([id, (starts.get(id) ?? []).length > 1]).toEqual([id, true]);
    expect((await queue.counts()).dead).toBe(0);
    await queue.close();
  }, 120_000);

  it("a worker stopped (SIGSTOP) past its lease cannot complete its job after it was reclaimed", async () => {
    const name = "stop";
    const queue = new Queue<number>(redis, name, { prefix });
    const register = new FencedRegister();
    let frozenFence = 0;
    const messages: Msg[] = [];
    const child = await spawn(
      name,
      register,
      (m, c) => {
        messages.push(m);
        if (m.type === "start" && frozenFence === 0) {
          frozenFence = m.fence as number;
          process.kill(c.pid, "SIGSTOP");
        }
      },
      ["1", "1000", "50"],
    );
    const { id } = await queue.add(1);
    await waitUntil("the first worker to start and freeze", () => frozenFence > 0, 20_000);
    const fences: number[] = [];
    const localStarted = gate();
    const release = gate();
    const local = new Worker<number, string>(
      redis,
      name,
      async (job) => {
        fences.push(job.fence);
        const written = register.write(job.id, job.fence);
        localStarted.open();
        // The reclaimed delivery is still running when the stopped worker resumes and tries to finish.
        await release.promise;
        return written ? "written" : "refused";
      },
      { prefix, leaseMs: 1_000, schedules: false },
    );
    try {
      await localStarted.promise;
      expect(fences[0]).toBeGreaterThan(frozenFence);
      process.kill(child.pid, "SIGCONT");
      await waitUntil("the resumed worker's write", () => register.rejected === 1, 20_000);
      const finished = (m: Msg) => m.type === "stats" && (m.refused as number) + (m.completed as number) >= 1;
      const poll = setInterval(() => child.command({ type: "stats" }), 100);
      await waitUntil("the resumed worker's finish", () => messages.some(finished), 20_000).finally(() =>
        clearInterval(poll),
      );
      expect(messages.find(finished)).toMatchObject({ refused: 1, completed: 0, aborted: 1 });
      release.open();
      expect(await queue.result(id, { timeoutMs: 20_000 })).toBe("written");
      expect(messages.find((m) => m.type === "aborted")).toMatchObject({ reason: "lease-lost", fence: frozenFence });
      expect(register.accepted.get(id)).toEqual([fences[0]]);
      expect(await queue.get(id)).toMatchObject({ state: "completed", result: "written", attempts: 2 });
    } finally {
      await local.close();
      await queue.close();
    }
  }, 60_000);
});
