import { connect, type RedisClient } from "@coordis/core";
import { type CoordisPluginOptions, coordis, type RateLimitExceededContext } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it, inject as provided } from "vitest";

const url = provided("coordisRedisUrl");
const prefix = testPrefix("fastify-parity");
const two = [{ name: "m", limit: 2, windowMs: 60_000 }];

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

let n = 0;
async function appWith(
  rateLimit: CoordisPluginOptions["rateLimit"],
  routes: (app: FastifyInstance) => void,
): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(coordis, { redis: shared, prefix: `${prefix}-${n++}`, rateLimit });
  routes(app);
  await app.ready();
  return app;
}

async function codes(app: FastifyInstance, url: string, count: number, headers: Record<string, string> = {}) {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push((await app.inject({ method: "GET", url, headers })).statusCode);
  return out;
}

describe("parity with @fastify/rate-limit", () => {
  it("global: every route limited, a route opts out with rateLimit: false", async () => {
    const app = await appWith({ rules: two, global: true }, (a) => {
      a.get("/a", async () => "ok");
      a.get("/b", async () => "ok");
      a.get("/health", { config: { coordis: { rateLimit: false } } }, async () => "ok");
    });
    try {
      expect(await codes(app, "/a", 3)).toEqual([200, 200, 429]);
      expect(await codes(app, "/b", 3)).toEqual([200, 200, 429]);
      const health = await app.inject({ method: "GET", url: "/health" });
      expect(health.statusCode).toBe(200);
      expect(health.headers.ratelimit).toBeUndefined();
      expect(await codes(app, "/health", 3)).toEqual([200, 200, 200]);
    } finally {
      await app.close();
    }
  });

  it("allowList: listed keys (array or function) are never limited and get no headers", async () => {
    const key = (req: { headers: Record<string, unknown> }) => String(req.headers["x-key"]);
    const app = await appWith({ rules: two, key }, (a) => {
      a.get("/list", { config: { coordis: { rateLimit: { allowList: ["vip"] } } } }, async () => "ok");
      a.get(
        "/fn",
        { config: { coordis: { rateLimit: { allowList: async (_req, k) => k.startsWith("int-") } } } },
        async () => "ok",
      );
    });
    try {
      expect(await codes(app, "/list", 4, { "x-key": "vip" })).toEqual([200, 200, 200, 200]);
      expect((await app.inject({ method: "GET", url: "/list", headers: { "x-key": "vip" } })).headers.ratelimit).toBe(
        undefined,
      );
      expect(await codes(app, "/list", 3, { "x-key": "joe" })).toEqual([200, 200, 429]);
      expect(await codes(app, "/fn", 4, { "x-key": "int-1" })).toEqual([200, 200, 200, 200]);
      expect(await codes(app, "/fn", 3, { "x-key": "ext-1" })).toEqual([200, 200, 429]);
    } finally {
      await app.close();
    }
  });

  it("onExceeding for admitted requests, onExceeded for rejected ones, with the key", async () => {
    const seen: string[] = [];
    const app = await appWith(
      {
        rules: two,
        key: () => "k1",
        onExceeding: (_req, key) => seen.push(`ok:${key}`),
        onExceeded: (_req, key) => seen.push(`over:${key}`),
      },
      (a) => a.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok"),
    );
    try {
      await codes(app, "/x", 3);
      expect(seen).toEqual(["ok:k1", "ok:k1", "over:k1"]);
    } finally {
      await app.close();
    }
  });

  it("errorResponseBuilder shapes the 429 body", async () => {
    const contexts: RateLimitExceededContext[] = [];
    const app = await appWith(
      {
        rules: two,
        errorResponseBuilder: (_req, ctx) => {
          contexts.push(ctx);
          return { code: "SLOW_DOWN", retryIn: ctx.after };
        },
      },
      (a) => a.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok"),
    );
    try {
      await codes(app, "/x", 2);
      const res = await app.inject({ method: "GET", url: "/x" });
      expect(res.statusCode).toBe(429);
      expect(res.json()).toEqual({ code: "SLOW_DOWN", retryIn: expect.stringMatching(/^\d+ seconds?$/) });
      expect(res.headers["retry-after"]).toBeDefined();
      expect(contexts).toHaveLength(1);
      expect(contexts[0]).toMatchObject({ statusCode: 429, ban: false, max: 2, rule: "m", route: "GET /x" });
      expect(contexts[0]?.ttl).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });

  it("header toggles: legacy x-ratelimit-* set, draft fields off, Retry-After off, nothing on admitted responses", async () => {
    const app = await appWith({ rules: two }, (a) => {
      a.get(
        "/legacy",
        { config: { coordis: { rateLimit: { headers: { legacy: true, draft: false } } } } },
        async () => "ok",
      );
      a.get(
        "/quiet",
        { config: { coordis: { rateLimit: { headers: { onAllowed: false, retryAfter: false } } } } },
        async () => "ok",
      );
    });
    try {
      const first = await app.inject({ method: "GET", url: "/legacy" });
      expect(first.headers["x-ratelimit-limit"]).toBe("2");
      expect(first.headers["x-ratelimit-remaining"]).toBe("1");
      expect(Number(first.headers["x-ratelimit-reset"])).toBeGreaterThanOrEqual(59);
      expect(first.headers.ratelimit).toBeUndefined();
      expect(first.headers["ratelimit-policy"]).toBeUndefined();
      await app.inject({ method: "GET", url: "/legacy" });
      const over = await app.inject({ method: "GET", url: "/legacy" });
      expect(over.statusCode).toBe(429);
      expect(over.headers["x-ratelimit-remaining"]).toBe("0");
      expect(over.headers["retry-after"]).toBe(over.headers["x-ratelimit-reset"]);

      const quiet = await app.inject({ method: "GET", url: "/quiet" });
      expect(quiet.statusCode).toBe(200);
      expect(quiet.headers.ratelimit).toBeUndefined();
      await app.inject({ method: "GET", url: "/quiet" });
      const quietOver = await app.inject({ method: "GET", url: "/quiet" });
      expect(quietOver.statusCode).toBe(429);
      expect(quietOver.headers.ratelimit).toMatch(/^"m";r=0;t=\d+$/);
      expect(quietOver.headers["retry-after"]).toBeUndefined();
    } finally {
      await app.close();
    }
  });

  it("hook: preHandler keys by what a route's own preHandler authenticated", async () => {
    const app = await appWith({ rules: two }, (a) => {
      a.decorateRequest("user", "");
      a.get(
        "/me",
        {
          preHandler: async (req) => {
            (req as unknown as { user: string }).user = String(req.headers["x-user"]);
          },
          config: {
            coordis: {
              rateLimit: { hook: "preHandler", key: (req) => (req as unknown as { user: string }).user },
            },
          },
        },
        async () => "ok",
      );
      a.get(
        "/onreq",
        { config: { coordis: { rateLimit: { key: (req) => (req as unknown as { user: string }).user } } } },
        async () => "ok",
      );
    });
    try {
      expect(await codes(app, "/me", 3, { "x-user": "ann" })).toEqual([200, 200, 429]);
      expect(await codes(app, "/me", 1, { "x-user": "bob" })).toEqual([200]);
      // In onRequest the user is not known yet: the empty key is refused, not shared.
      expect(await codes(app, "/onreq", 1, { "x-user": "ann" })).toEqual([500]);
    } finally {
      await app.close();
    }
  });

  it("hook: preParsing refuses before the body is parsed, preValidation keys by the parsed body", async () => {
    let handled = 0;
    const app = await appWith({ rules: two }, (a) => {
      a.decorateRequest("tenant", "");
      a.post(
        "/early",
        {
          // The route's own preParsing hook runs first: the limit keys by what it found (empty in onRequest).
          preParsing: async (req) => {
            (req as unknown as { tenant: string }).tenant = String(req.headers["x-tenant"]);
          },
          config: {
            coordis: { rateLimit: { hook: "preParsing", key: (req) => (req as unknown as { tenant: string }).tenant } },
          },
        },
        async () => {
          handled++;
          return "ok";
        },
      );
      a.post(
        "/by-account",
        {
          config: {
            coordis: {
              rateLimit: {
                hook: "preValidation",
                key: (req) => String((req.body as { account?: unknown } | undefined)?.account),
              },
            },
          },
        },
        async () => {
          handled++;
          return "ok";
        },
      );
    });
    const post = (url: string, payload: string) =>
      app.inject({ method: "POST", url, payload, headers: { "content-type": "application/json", "x-tenant": "t1" } });
    try {
      // preParsing: a malformed body within the budget is a 400 from the parser; over the budget the 429 comes
      // first (the body is never parsed) and no handler runs.
      expect((await post("/early", "{}")).statusCode).toBe(200);
      expect((await post("/early", "{not json")).statusCode).toBe(400);
      const over = await post("/early", "{not json");
      expect(over.statusCode).toBe(429);
      expect(over.headers.ratelimit).toMatch(/^"m";r=0;t=\d+$/);
      // preValidation: the key comes from the parsed body, so each account has its own budget.
      const ann = JSON.stringify({ account: "ann" });
      expect([(await post("/by-account", ann)).statusCode, (await post("/by-account", ann)).statusCode]).toEqual([
        200, 200,
      ]);
      expect((await post("/by-account", ann)).statusCode).toBe(429);
      expect((await post("/by-account", JSON.stringify({ account: "bob" }))).statusCode).toBe(200);
      // A malformed body never reaches preValidation: the parser's 400.
      expect((await post("/by-account", "{not json")).statusCode).toBe(400);
      expect(handled).toBe(4);
    } finally {
      await app.close();
    }
  });

  it("rules as a function of the request (per plan), and cost as a function", async () => {
    const free = [{ name: "free", limit: 1, windowMs: 60_000 }];
    const pro = [{ name: "pro", limit: 3, windowMs: 60_000 }];
    const app = await appWith({ key: (req) => String(req.headers["x-key"]) }, (a) => {
      a.get(
        "/plan",
        { config: { coordis: { rateLimit: { rules: (req) => (req.headers["x-plan"] === "pro" ? pro : free) } } } },
        async () => "ok",
      );
      a.get(
        "/heavy",
        {
          config: {
            coordis: {
              rateLimit: {
                rules: [{ name: "u", limit: 10, windowMs: 60_000 }],
                cost: (req) => Number(req.headers["x-cost"]),
              },
            },
          },
        },
        async () => "ok",
      );
    });
    try {
      expect(await codes(app, "/plan", 2, { "x-key": "a", "x-plan": "free" })).toEqual([200, 429]);
      expect(await codes(app, "/plan", 4, { "x-key": "b", "x-plan": "pro" })).toEqual([200, 200, 200, 429]);
      const res = await app.inject({ method: "GET", url: "/plan", headers: { "x-key": "c", "x-plan": "pro" } });
      expect(res.headers["ratelimit-policy"]).toBe('"pro";q=3;w=60');
      expect(await codes(app, "/heavy", 3, { "x-key": "a", "x-cost": "4" })).toEqual([200, 200, 429]);
    } finally {
      await app.close();
    }
  });

  it("ban: after `ban` 429s within the window the key gets 403", async () => {
    const contexts: RateLimitExceededContext[] = [];
    const app = await appWith({ rules: two, ban: 2 }, (a) => {
      a.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
      a.get(
        "/built",
        {
          config: {
            coordis: {
              rateLimit: {
                errorResponseBuilder: (_req, ctx) => {
                  contexts.push(ctx);
                  return { banned: ctx.ban };
                },
              },
            },
          },
        },
        async () => "ok",
      );
    });
    try {
      expect(await codes(app, "/x", 6)).toEqual([200, 200, 429, 429, 403, 403]);
      const body = (await app.inject({ method: "GET", url: "/x" })).json();
      expect(body).toMatchObject({ status: 403, title: "Forbidden" });
      expect(await codes(app, "/built", 5)).toEqual([200, 200, 429, 429, 403]);
      expect(contexts.map((c) => [c.statusCode, c.ban])).toEqual([
        [429, false],
        [429, false],
        [403, true],
      ]);
    } finally {
      await app.close();
    }
  });
  it("a callback that throws on a rejected request fails it with its error (500), banned or not", async () => {
    const boom = () => {
      throw new Error("callback failed");
    };
    const app = await appWith({ rules: two }, (a) => {
      a.get("/exceeded", { config: { coordis: { rateLimit: { onExceeded: boom } } } }, async () => "ok");
      a.get("/builder", { config: { coordis: { rateLimit: { errorResponseBuilder: boom } } } }, async () => "ok");
      a.get("/banned", { config: { coordis: { rateLimit: { onExceeded: boom, ban: 1 } } } }, async () => "ok");
    });
    try {
      for (const url of ["/exceeded", "/builder", "/banned"]) {
        expect(await codes(app, url, 3)).toEqual([200, 200, 500]);
        expect((await app.inject({ method: "GET", url })).json()).toMatchObject({ message: "callback failed" });
      }
    } finally {
      await app.close();
    }
  });
});
