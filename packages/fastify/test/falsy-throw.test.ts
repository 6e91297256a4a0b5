import { connect, type RedisClient } from "@coordis/core";
import { type CoordisPluginOptions, coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("fastify-falsy-throw");
const rules = [{ name: "s", limit: 1, windowMs: 60_000 }];

let redis: RedisClient;
beforeAll(() => {
  redis = connect(inject("coordisRedisUrl"));
});
afterAll(() => {
  redis.disconnect();
});

let n = 0;
/** The status codes of `count` GETs of a route limited by `rateLimit`, and how many reached its handler. */
async function run(rateLimit: NonNullable<CoordisPluginOptions["rateLimit"]>, count: number) {
  const app = Fastify();
  await app.register(coordis, { redis, prefix: `${prefix}-${n++}`, rateLimit });
  let served = 0;
  app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => {
    served++;
    return "ok";
  });
  try {
    const codes: number[] = [];
    for (let i = 0; i < count; i++) codes.push((await app.inject({ url: "/x" })).statusCode);
    return { codes, served };
  } finally {
    await app.close();
  }
}

// `throw undefined`, `Promise.reject()`, `throw null`: Fastify reads a falsy error as none, so passed on as it is,
// such a throw would let the request through, unlimited.
describe("a function of the app's that throws or rejects with no error value fails the request, never admits it", () => {
  it("key function", async () => {
    expect(await run({ rules, key: async () => Promise.reject(undefined) }, 2)).toEqual({
      codes: [500, 500],
      served: 0,
    });
    expect(
      await run(
        {
          rules,
          key: () => {
            throw null;
          },
        },
        2,
      ),
    ).toEqual({ codes: [500, 500], served: 0 });
  });

  it("allowList and rules functions", async () => {
    expect(await run({ rules, allowList: async () => Promise.reject(null) }, 2)).toEqual({
      codes: [500, 500],
      served: 0,
    });
    expect(await run({ rules: async () => Promise.reject(undefined) }, 2)).toEqual({ codes: [500, 500], served: 0 });
  });

  it("errorResponseBuilder and onExceeded on a rejected request", async () => {
    expect(await run({ rules, errorResponseBuilder: async () => Promise.reject(undefined) }, 3)).toEqual({
      codes: [200, 500, 500],
      served: 1,
    });
    expect(
      await run(
        {
          rules,
          onExceeded: () => {
            throw undefined;
          },
        },
        3,
      ),
    ).toEqual({ codes: [200, 500, 500], served: 1 });
  });

  it("cost function", async () => {
    expect(
      await run(
        {
          rules,
          cost: () => {
            throw undefined;
          },
        },
        2,
      ),
    ).toEqual({ codes: [500, 500], served: 0 });
  });
});
