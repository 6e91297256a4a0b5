import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect, type RedisClient } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

type Msg = { type: string; distinct?: number; value?: { value: number }; ms?: number };

interface Worker {
  child: ChildProcess;
  next(type: string): Promise<Msg>;
  exited: Promise<number | null>;
  stderr(): string;
}

function startWorker(args: string[]): Worker {
  const file = fileURLToPath(new URL("./fixtures/stampede-worker.ts", import.meta.url));
  const child = spawn(process.execPath, ["--conditions=@coordis/source", "--import", "tsx", file, ...args], {
    stdio: ["ignore", "inherit", "pipe", "ipc"],
  });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const inbox: Msg[] = [];
  const wanted: Array<{ type: string; resolve: (m: Msg) => void }> = [];
  child.on("message", (raw) => {
    const msg = raw as Msg;
    const i = wanted.findIndex((w) => w.type === msg.type);
    if (i >= 0) wanted.splice(i, 1)[0]?.resolve(msg);
    else inbox.push(msg);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    exited,
    stderr: () => err,
    next(type) {
      const i = inbox.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as Msg);
      return new Promise((resolve, reject) => {
        wanted.push({ type, resolve });
        void exited.then((code) => reject(new Error(`worker exited (${code}) before "${type}": ${err}`)));
      });
    },
  };
}

describe("stampede protection across processes", () => {
  let redis: RedisClient;
  const url = () => inject("coordisRedisUrl");
  beforeAll(async () => {
    redis = connect(url());
    await redis.ping();
  });
  afterAll(() => redis.disconnect());

  it("3 processes x 200 concurrent getOrSet on a cold key: the loader runs exactly once", async () => {
    await redis.del(`${prefix}:loader-calls`);
    const workers = [0, 1, 2].map(() => startWorker([url(), prefix, "cold-1", "normal", "200"]));
    try {
      await Promise.all(workers.map((w) => w.next("ready")));
      for (const w of workers) w.child.send({ go: true });
      const done = await Promise.all(workers.map((w) => w.next("done")));
      for (const d of done) {
        expect(d.distinct).toBe(1);
        expect(d.value?.value).toBe(42);
      }
      expect(Number(await redis.get(`${prefix}:loader-calls`))).toBe(1);
      // Everyone got the single loader's result, so the answers of all processes are identical.
      expect(new Set(done.map((d) => JSON.stringify(d.value))).size).toBe(1);
    } finally {
      for (const w of workers) w.child.kill("SIGKILL");
    }
  });

  it("the lock holder is SIGKILLed mid-load: the others recover after the bounded wait", async () => {
    await redis.del(`${prefix}:loader-calls`);
    const holder = startWorker([url(), prefix, "cold-2", "hang", "50"]);
    const others = [0, 1].map(() => startWorker([url(), prefix, "cold-2", "normal", "200"]));
    try {
      await holder.next("ready");
      holder.child.send({ go: true });
      await holder.next("loading"); // it holds the fill lock now and hangs
      await Promise.all(others.map((w) => w.next("ready")));
      for (const w of others) w.child.send({ go: true });
      holder.child.kill("SIGKILL");
      const started = performance.now();
      const done = await Promise.all(others.map((w) => w.next("done")));
      const elapsed = performance.now() - started;
      for (const d of done) {
        expect(d.distinct).toBe(1);
        expect(d.value?.value).toBe(42);
      }
      // The killed holder's call plus exactly one recovery load once its 1 s lock expired (wait bound 4 s).
      expect(Number(await redis.get(`${prefix}:loader-calls`))).toBe(2);
      expect(elapsed).toBeLessThan(10_000);
    } finally {
      holder.child.kill("SIGKILL");
      for (const w of others) w.child.kill("SIGKILL");
    }
  });
});
