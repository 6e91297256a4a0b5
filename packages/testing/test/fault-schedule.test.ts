import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, InvalidArgumentError } from "@coordis/core";
import {
  DeadlineExceededError,
  describeSchedule,
  type FaultLogEntry,
  type FaultStep,
  faultSchedule,
  mulberry32,
  type RedisServer,
  runSchedule,
  startProxy,
  startRedis,
  tryWaitUntil,
  Watchdog,
  waitUntil,
  withDeadline,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const generate = {
  durationMs: 20_000,
  meanIntervalMs: 400,
  faults: ["pause", "kill", "restart", "latency", "drop", "blackhole"] as const,
  targets: { servers: 2, proxies: 2, processes: 1 },
};

/** Process state letter from /proc (T = stopped). */
function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
}

function waitStopped(pid: number, withinMs: number): Promise<boolean> {
  return tryWaitUntil(() => procState(pid) === "T", { timeoutMs: withinMs, intervalMs: 5 });
}

describe("mulberry32", () => {
  it("is deterministic per seed and spreads over [0, 1)", () => {
    const a = mulberry32(1);
    const b = mulberry32(1);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    expect(mulberry32(2)()).not.toBe(mulberry32(1)());
  });
});

describe("faultSchedule", () => {
  it("same seed gives an identical schedule, a different seed a different one", () => {
    const a = faultSchedule({ seed: 1234, generate });
    const b = faultSchedule({ seed: 1234, generate });
    const c = faultSchedule({ seed: 1235, generate });
    expect(a.seed).toBe(1234);
    expect(b).toEqual(a);
    expect(c.steps).not.toEqual(a.steps);
    expect(describeSchedule(b)).toBe(describeSchedule(a));
    expect(describeSchedule(a).split("\n")[0]).toBe(`seed 1234, ${a.steps.length} faults over ${a.durationMs}ms`);
  });

  it("a random seed is reported so the run can be replayed", () => {
    const a = faultSchedule({ generate });
    expect(Number.isInteger(a.seed)).toBe(true);
    expect(faultSchedule({ seed: a.seed, generate })).toEqual(a);
  });

  it("generated steps fit the run, target valid indexes, never overlap on one target", () => {
    const { steps, durationMs } = faultSchedule({ seed: 99, generate });
    expect(durationMs).toBe(generate.durationMs);
    expect(steps.length).toBeGreaterThan(20);
    const kinds = new Set(steps.map((s) => s.fault));
    expect([...kinds].sort()).toEqual([...generate.faults].sort());
    const lastEnd = new Map<string, number>();
    let previousAt = 0;
    for (const s of steps) {
      expect(s.atMs).toBeGreaterThanOrEqual(previousAt);
      previousAt = s.atMs;
      expect(s.atMs + s.durationMs).toBeLessThanOrEqual(generate.durationMs);
      const count = s.target === "server" ? 2 : s.target === "proxy" ? 2 : 1;
      expect(s.index).toBeLessThan(count);
      if (s.fault === "drop" || s.fault === "restart") expect(s.durationMs).toBe(0);
      else expect(s.durationMs).toBeGreaterThanOrEqual(100);
      if (s.fault === "latency") expect(s.latencyMs).toBeGreaterThanOrEqual(20);
      if (s.fault === "restart") expect(s.target).toBe("server");
      const key = `${s.target}:${s.index}`;
      expect(s.atMs).toBeGreaterThanOrEqual(lastEnd.get(key) ?? 0);
      lastEnd.set(key, s.atMs + s.durationMs);
    }
  });

  it("sorts explicit steps and rejects invalid ones naming the argument", () => {
    const s = faultSchedule({
      steps: [
        { atMs: 500, fault: "drop", target: "proxy", index: 0, durationMs: 99 },
        { atMs: 100, fault: "pause", target: "server", index: 0, durationMs: 200 },
      ],
    });
    expect(s.steps.map((x) => x.atMs)).toEqual([100, 500]);
    expect(s.steps[1]?.durationMs).toBe(0); // drop is instantaneous
    expect(s.durationMs).toBe(500);
    const bad = (step: Partial<FaultStep>) =>
      faultSchedule({ steps: [{ atMs: 0, fault: "pause", target: "server", index: 0, durationMs: 1, ...step }] });
    expect(() => bad({ fault: "latency" })).toThrow(InvalidArgumentError);
    expect(() => bad({ target: "proxy" })).toThrow(/steps\[0\]\.target/);
    expect(() => bad({ index: -1 })).toThrow(/steps\[0\]\.index/);
    expect(() => bad({ atMs: Number.NaN })).toThrow(/steps\[0\]\.atMs/);
    expect(() => faultSchedule({ seed: 1.5, steps: [] })).toThrow(/"seed"/);
    expect(() => faultSchedule({ seed: 1 })).toThrow(InvalidArgumentError);
    expect(() =>
      faultSchedule({
        generate: { durationMs: 1000, meanIntervalMs: 100, faults: ["latency"], targets: { proxies: 0 } },
      }),
    ).toThrow(/generate\.faults/);
  });
});

describe("runSchedule on real targets", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("injects pause, kill, restart and proxy faults at their offsets and heals everything", async () => {
    const proxy = await startProxy({ target: server });
    const worker = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    const client = connect(proxy.url, { commandTimeoutMs: 1_000 });
    const pingsWithin = (ms: number) =>
      waitUntil("a PONG through the proxy", async () => (await client.ping().catch(() => undefined)) === "PONG", {
        timeoutMs: ms,
        intervalMs: 20,
      });
    try {
      await pingsWithin(10_000);
      const schedule = faultSchedule({
        seed: 5,
        steps: [
          { atMs: 50, fault: "pause", target: "server", index: 0, durationMs: 300 },
          { atMs: 50, fault: "latency", target: "proxy", index: 0, durationMs: 300, latencyMs: 40, jitterMs: 5 },
          { atMs: 100, fault: "pause", target: "process", index: 0, durationMs: 200 },
          { atMs: 450, fault: "kill", target: "server", index: 0, durationMs: 200 },
          { atMs: 450, fault: "blackhole", target: "proxy", index: 0, durationMs: 200 },
          { atMs: 900, fault: "restart", target: "server", index: 0, durationMs: 0 },
          { atMs: 900, fault: "drop", target: "proxy", index: 0, durationMs: 0 },
          { atMs: 1000, fault: "refuse", target: "proxy", index: 0, durationMs: 100 },
        ],
      });
      const seen: string[] = [];
      let processStopped: Promise<boolean> = Promise.resolve(false);
      const onInject = (e: FaultLogEntry) => {
        const s = e.step;
        if (s.target === "server" && s.fault === "pause") seen.push(`server paused=${server.paused}`);
        if (s.target === "server" && s.fault === "kill") seen.push(`server running=${server.running}`);
        // SIGSTOP is delivered asynchronously: poll /proc for the stopped state while the pause lasts.
        if (s.target === "process") processStopped = waitStopped(worker.pid as number, 150);
        if (s.fault === "latency") seen.push(`latency=${proxy.stats().latencyMs}`);
        if (s.fault === "blackhole") seen.push(`blackholed=${proxy.stats().blackholed}`);
        if (s.fault === "refuse") seen.push(`refusing=${proxy.stats().refusing}`);
      };
      const log = await runSchedule(
        schedule,
        { servers: [server], proxies: [proxy], processes: [worker] },
        { onInject },
      );
      expect(seen.sort()).toEqual(
        ["server paused=true", "latency=40", "server running=false", "blackholed=true", "refusing=true"].sort(),
      );
      expect(await processStopped).toBe(true);
      expect(log.seed).toBe(5);
      expect(log.injected).toBe(8);
      expect(log.byKind).toMatchObject({ pause: 2, kill: 1, restart: 1, latency: 1, blackhole: 1, drop: 1, refuse: 1 });
      expect(log.aborted).toBe(false);
      expect(log.repaired).toBe(0);
      for (const e of log.entries) {
        expect(e.error).toBeUndefined();
        const at = e.injectedAtMs as number;
        // Tolerant timing: never early, and not absurdly late on a busy machine.
        expect(at).toBeGreaterThanOrEqual(e.step.atMs - 1);
        expect(at).toBeLessThan(e.step.atMs + 1_000);
        expect(e.healedAtMs).toBeGreaterThanOrEqual(at + e.step.durationMs - 1);
      }
      // Everything healed.
      expect(server.running).toBe(true);
      expect(server.paused).toBe(false);
      expect(procState(worker.pid as number)).not.toBe("T");
      expect(proxy.stats()).toMatchObject({ latencyMs: 0, blackholed: false, refusing: false });
      await pingsWithin(10_000);
    } finally {
      client.disconnect();
      worker.kill("SIGKILL");
      await proxy.close();
    }
  });

  it("kill of a process is permanent and reported without a heal time", async () => {
    const worker = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    const exited = new Promise<string | null>((resolve) => worker.once("exit", (_code, signal) => resolve(signal)));
    const log = await runSchedule(
      faultSchedule({ steps: [{ atMs: 0, fault: "kill", target: "process", index: 0, durationMs: 0 }] }),
      { processes: [worker] },
    );
    expect(await withDeadline(exited, 5_000, "worker exit")).toBe("SIGKILL");
    expect(log.injected).toBe(1);
    expect(log.entries[0]?.healedAtMs).toBeUndefined();
  });

  it("abort skips pending steps and heals injected faults at once", async () => {
    const controller = new AbortController();
    const schedule = faultSchedule({
      steps: [
        { atMs: 0, fault: "pause", target: "server", index: 0, durationMs: 30_000 },
        { atMs: 20_000, fault: "kill", target: "server", index: 0, durationMs: 100 },
      ],
    });
    const run = runSchedule(
      schedule,
      { servers: [server] },
      { signal: controller.signal, onInject: () => controller.abort() },
    );
    const log = await withDeadline(run, 5_000, "aborted schedule");
    expect(log.aborted).toBe(true);
    expect(log.injected).toBe(1);
    expect(log.entries[1]?.injectedAtMs).toBeUndefined();
    expect(server.paused).toBe(false);
    expect(await server.client().ping()).toBe("PONG");
  });

  it("rejects a schedule naming a target that is not given, before injecting anything", async () => {
    const schedule = faultSchedule({ steps: [{ atMs: 0, fault: "pause", target: "server", index: 1, durationMs: 5 }] });
    await expect(runSchedule(schedule, { servers: [server] })).rejects.toThrow(/server\[1\]/);
    expect(server.paused).toBe(false);
  });
});

describe("withDeadline and Watchdog", () => {
  it("passes through values and rejections that arrive in time", async () => {
    expect(await withDeadline(Promise.resolve(3), 100, "value")).toBe(3);
    await expect(withDeadline(Promise.reject(new Error("boom")), 100, "failure")).rejects.toThrow("boom");
    expect(() => withDeadline(Promise.resolve(1), -1, "x")).toThrow(InvalidArgumentError);
  });

  it("rejects with DeadlineExceededError naming what hung", async () => {
    const never = new Promise<never>(() => {});
    const err = await withDeadline(never, 50, "lock acquire under blackhole").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err).toMatchObject({ code: "ERR_DEADLINE_EXCEEDED", what: "lock acquire under blackhole", deadlineMs: 50 });
    expect((err as Error).message).toContain("lock acquire under blackhole");
  });

  it("Watchdog counts violations, and tells late from hanging", async () => {
    const watchdog = new Watchdog();
    let release: () => void = () => {};
    const late = new Promise<void>((resolve) => {
      release = resolve;
    });
    await watchdog.watch(Promise.resolve("ok"), 100, "fast");
    await expect(watchdog.watch(Promise.reject(new Error("no")), 100, "rejected")).rejects.toThrow("no");
    await expect(watchdog.watch(late, 30, "late")).rejects.toBeInstanceOf(DeadlineExceededError);
    await expect(watchdog.watch(new Promise(() => {}), 30, "hangs")).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(watchdog.watched).toBe(4);
    expect(watchdog.violations.map((v) => v.what)).toEqual(["late", "hangs"]);
    expect(watchdog.hanging.map((v) => v.what)).toEqual(["late", "hangs"]);
    release();
    await late;
    expect(watchdog.hanging.map((v) => v.what)).toEqual(["hangs"]);
    expect(watchdog.violations[0]?.settledAfterMs).toBeGreaterThanOrEqual(29);
    expect(watchdog.pending).toBe(1);
  });
});
