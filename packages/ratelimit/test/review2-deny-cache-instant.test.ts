import { RateLimiter } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { sharedClients } from "./fixtures/clients.js";

const prefix = testPrefix("rl-deny-instant");

// The README: a deny cache's local answer "never outlasts Redis' instant, however slow the reply". Redis decides on
// whole milliseconds (TIME cut to the ms): a rejection decided at x.9 ms on Redis' clock announces retryAfterMs from x,
// so the call passes on Redis up to 1 ms before the caller's issue time + retryAfterMs. The cache must not answer
// "rejected" in that last millisecond, when Redis admits the same call.
describe("deny cache: no local rejection once Redis admits the call", () => {
  const clients = sharedClients();

  it("a call made right after a peek that Redis admitted is not rejected locally", async () => {
    const rl = new RateLimiter(clients.redis, {
      rules: [{ name: "w", limit: 1, windowMs: 200 }],
      prefix,
      denyCache: true,
    });
    let checked = 0;
    for (let trial = 0; trial < 40 && checked < 25; trial++) {
      const key = `k-${process.pid}-${trial}`;
      expect(await rl.consume(key)).toMatchObject({ allowed: true, reason: "redis" });
      const rejected = await rl.consume(key);
      if (rejected.allowed) continue; // the window ended between the two calls (a loaded machine): try again
      expect(rejected.reason).toBe("redis");
      // Ask Redis (peek does not use the deny cache) until it would admit a call; then make that call at once.
      const deadline = performance.now() + 5_000;
      let peeked = await rl.peek(key);
      while (!peeked.allowed && performance.now() < deadline) peeked = await rl.peek(key);
      expect(peeked.allowed).toBe(true);
      // Nothing consumed on the key since: Redis admits this call, so a local rejection would outlast Redis' instant.
      const after = await rl.consume(key);
      expect(after, `trial ${trial}: ${JSON.stringify(after)}`).toMatchObject({ allowed: true, reason: "redis" });
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(10);
  });
});
