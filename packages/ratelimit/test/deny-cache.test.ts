import { connect } from "@coordis/core";
import { RateLimiter } from "@coordis/ratelimit";
import { startProxy, testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, inject, it, vi } from "vitest";
import { sharedClients } from "./fixtures/clients.js";

const prefix = testPrefix();
let n = 0;
const freshKey = () => `dc-${process.pid}-${++n}`;

describe("deny cache: a local answer names the same instants as Redis' answer", () => {
  const clients = sharedClients();

  it("retryAfterMs and resetMs (top level and per rule) count down together", async () => {
    const key = freshKey();
    const rl = new RateLimiter(clients.redis, {
      rules: [
        { name: "f", limit: 1, windowMs: 60_000 },
        { name: "t", limit: 10, windowMs: 600_000, algorithm: "token-bucket" },
      ],
      prefix,
      denyCache: true,
    });
    await rl.consume(key);
    const first = await rl.consume(key);
    expect(first).toMatchObject({ allowed: false, reason: "redis", rule: "f" });
    expect(first.resetMs).toBe(first.retryAfterMs); // a fixed window is full again when the call passes again
    const [f, t] = first.rules;
    expect(t).toMatchObject({ allowed: true, retryAfterMs: 0, remaining: 9 });
    const at = Date.now();
    await waitUntil("the clock to move on 30 ms", () => Date.now() >= at + 30, 5_000);
    const cached = await rl.consume(key);
    expect(cached).toMatchObject({ allowed: false, reason: "deny-cache", rule: "f" });
    expect(cached.retryAfterMs).toBeLessThan(first.retryAfterMs);
    expect(cached.resetMs).toBe(cached.retryAfterMs);
    const [cf, ct] = cached.rules;
    expect(cf).toMatchObject({ allowed: false, retryAfterMs: cached.retryAfterMs, resetMs: cached.retryAfterMs });
    // the token bucket refills meanwhile: its resetMs moves by the same time
    expect(ct?.resetMs).toBe((t?.resetMs ?? 0) - (first.retryAfterMs - cached.retryAfterMs));
    expect(f?.resetMs).toBe(first.resetMs);
  });

  it("a call of another cost is not answered with the remembered one's retryAfterMs: it goes to Redis", async () => {
    const key = freshKey();
    const rl = new RateLimiter(clients.redis, {
      rules: [{ name: "b", limit: 10, windowMs: 10_000, algorithm: "token-bucket" }],
      prefix,
      denyCache: true,
    });
    expect(await rl.consume(key, 10)).toMatchObject({ allowed: true, remaining: 0 });
    const one = await rl.consume(key, 1);
    expect(one).toMatchObject({ allowed: false, reason: "redis" });
    // Five units take about five times as long to come back: only Redis can say how long.
    const five = await rl.consume(key, 5);
    expect(five).toMatchObject({ allowed: false, reason: "redis" });
    expect(five.retryAfterMs).toBeGreaterThan(one.retryAfterMs + 2_000);
    // The same cost again: answered locally, with the instant Redis named for it.
    const again = await rl.consume(key, 5);
    expect(again).toMatchObject({ allowed: false, reason: "deny-cache" });
    expect(again.retryAfterMs).toBeGreaterThan(one.retryAfterMs + 2_000);
    expect(again.retryAfterMs).toBeLessThanOrEqual(five.retryAfterMs);
  });

  it("a slow reply does not keep a key rejected locally past Redis' instant", async () => {
    const proxy = await startProxy({ target: inject("coordisRedisUrl") });
    const slow = connect(proxy.url, { commandTimeoutMs: 5_000 });
    try {
      const key = freshKey();
      const rl = new RateLimiter(slow, { rules: [{ name: "s", limit: 1, windowMs: 1_000 }], prefix, denyCache: true });
      await rl.consume(key);
      proxy.setLatency(300); // each way: a reply arrives 300 ms after Redis decided
      expect(await rl.consume(key)).toMatchObject({ allowed: false, reason: "redis" });
      // The window's end on Redis' clock, from the stored entry "s|fw=<expAtMs>:...".
      const stored = String(await clients.admin.get(`${prefix}:rl:{${key}}`));
      const expAt = Number(/=(\d+):/.exec(stored)?.[1]);
      const serverNow = async () => {
        const [sec, usec] = (await clients.admin.time()) as [string | number, string | number];
        return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      };
      await waitUntil("Redis' clock to pass the window's end", async () => (await serverNow()) > expAt + 20, 5_000);
      expect((await rl.consume(key)).reason).not.toBe("deny-cache");
    } finally {
      slow.disconnect();
      await proxy.close();
    }
  });

  it("a wall clock stepped back (NTP) does not keep a key rejected locally past retryAfterMs", async () => {
    const key = freshKey();
    const rl = new RateLimiter(clients.redis, {
      rules: [{ name: "f", limit: 1, windowMs: 1_000 }],
      prefix,
      denyCache: true,
    });
    await rl.consume(key);
    const rejected = await rl.consume(key);
    // The cache times the rejection from when its answer came, before this line: its retryAfterMs has passed once
    // the monotonic clock is retryAfterMs past this instant (and Redis' window, timed from earlier, has ended too).
    const passes = performance.now() + rejected.retryAfterMs;
    expect(rejected).toMatchObject({ allowed: false, reason: "redis" });
    const wall = Date.now.bind(Date);
    const stepped = vi.spyOn(Date, "now").mockImplementation(() => wall() - 3_600_000);
    try {
      expect(await rl.consume(key)).toMatchObject({ allowed: false, reason: "deny-cache" });
      await waitUntil("retryAfterMs to pass", () => performance.now() >= passes, 5_000);
      expect(await rl.consume(key)).toMatchObject({ allowed: true, reason: "redis" });
    } finally {
      stepped.mockRestore();
    }
  });
});
