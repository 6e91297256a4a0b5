import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-decorator-input");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

/** What `fn` throws or rejects with. */
async function failure(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("rules given to the decorator's methods are checked at its boundary", () => {
  it("rateLimiter(rules) and peekRateLimit(key, { rules }): a non-array or bad rules is an InvalidArgumentError naming them", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix });
    await app.ready();
    try {
      const cases: Array<[string, () => unknown]> = [
        ["rules", () => app.coordis.rateLimiter(null as never)],
        ["rules", () => app.coordis.rateLimiter("burst" as never)],
        ["rules", () => app.coordis.rateLimiter({ name: "burst", limit: 1, windowMs: 1_000 } as never)],
        ["rules[0].limit", () => app.coordis.rateLimiter([{ name: "burst", limit: 0, windowMs: 1_000 }])],
        ["options.rules", () => app.coordis.peekRateLimit("k", { group: "g", rules: "burst" as never })],
        ["options.rules", () => app.coordis.peekRateLimit("k", { group: "g", rules: {} as never })],
        [
          "options.rules[0].limit",
          () => app.coordis.peekRateLimit("k", { group: "g", rules: [{ name: "b", limit: 0, windowMs: 1_000 }] }),
        ],
      ];
      for (const [argument, call] of cases) {
        const err = await failure(call);
        expect(err, argument).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).argument, String(call)).toBe(argument);
      }
      // Good rules still work.
      const limiter = app.coordis.rateLimiter([{ name: "burst", limit: 1, windowMs: 1_000 }]);
      expect((await limiter.peek("k")).allowed).toBe(true);
    } finally {
      await app.close();
    }
  });
});
