import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect } from "@coordis/core";
import { RateLimiter } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
const worker = fileURLToPath(new URL("./fixtures/consume-worker.ts", import.meta.url));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

function start(url: string, keyBase: string, callers: number) {
  const child = spawn(
    process.execPath,
    ["--conditions=@coordis/source", "--import", "tsx", worker, url, prefix, keyBase, String(callers)],
    { stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  children.push(child);
  const ready = new Promise<void>((resolve, reject) => {
    child.on("message", (m: { type: string }) => m.type === "ready" && resolve());
    child.on("exit", (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
  });
  const done = new Promise<number[]>((resolve, reject) => {
    child.on("message", (m: { type: string; counts: number[] }) => m.type === "done" && resolve(m.counts));
    child.on("exit", (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
  });
  return { child, ready, done };
}

describe("exactness across processes: 4 processes x 50 concurrent callers on one key, limit 100", () => {
  it("fixed-window, token-bucket and gcra admit exactly 100; sliding-window stays within its bound", async () => {
    const url = inject("coordisRedisUrl");
    const keyBase = `exact-${process.pid}`;
    const workers = Array.from({ length: 4 }, () => start(url, keyBase, 50));
    await Promise.all(workers.map((w) => w.ready));
    const t0 = Date.now();
    for (const w of workers) w.child.send({ type: "go" });
    const results = await Promise.all(workers.map((w) => w.done));
    const elapsed = Date.now() - t0;
    const total = (i: number) => results.reduce((sum, counts) => sum + (counts[i] ?? 0), 0);
    expect(total(0)).toBe(100); // fixed-window
    expect(total(2)).toBe(100); // token-bucket (refill 1 per 6 s)
    expect(total(3)).toBe(100); // gcra (emission interval 6 s)
    // sliding-window: exact within one window; across a boundary at most limit * elapsed / windowMs more.
    expect(total(1)).toBeGreaterThanOrEqual(100);
    expect(total(1)).toBeLessThanOrEqual(100 + Math.ceil((100 * elapsed) / 30_000));

    // and the stored state agrees: nothing left in any bucket
    const redis = connect(url);
    try {
      for (const algorithm of ["fixed-window", "token-bucket", "gcra"] as const) {
        const rl = new RateLimiter(redis, {
          prefix,
          rules: [{ name: "x", limit: 100, windowMs: algorithm === "fixed-window" ? 30_000 : 600_000, algorithm }],
        });
        expect((await rl.peek(`${keyBase}-${algorithm}`)).remaining).toBe(0);
      }
    } finally {
      redis.disconnect();
    }
  });
});
