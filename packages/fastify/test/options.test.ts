import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type CoordisPluginOptions, coordis } from "@coordis/fastify";
import { countCommands, mulberry32, type RedisServer, startRedis } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let server: RedisServer;
let redis: RedisClient;
let admin: RedisClient;
/** Connections a countCommands block opens by itself (its MONITOR probe). */
let probeConnections = 0;
beforeAll(async () => {
  server = await startRedis({ leastPrivilege: true });
  redis = connect(server.url);
  admin = connect(server.adminUrl);
  await redis.ping();
  const before = await connectionsReceived();
  await countCommands(server, async () => undefined);
  probeConnections = (await connectionsReceived()) - before;
});
afterAll(async () => {
  redis.disconnect();
  admin.disconnect();
  await server.stop();
});

async function connectionsReceived(): Promise<number> {
  const info = await admin.info("stats");
  return Number(/total_connections_received:(\d+)/.exec(info)?.[1]);
}

/** Registers the plugin with `options` and returns what `ready()` rejected with. */
async function registrationError(options: unknown): Promise<unknown> {
  const app = Fastify();
  app.register(coordis, options as CoordisPluginOptions);
  const err = await app.ready().then(
    () => undefined,
    (e: unknown) => e,
  );
  await app.close().catch(() => undefined);
  return err;
}

const bad: Array<[string, unknown]> = [
  ["unknown key", { prefix: "p", bogus: 1 }],
  ["typo of rateLimit", { ratelimit: {} }],
  ["empty prefix", { prefix: "" }],
  ["numeric prefix", { prefix: 5 }],
  ["not a client", { redis: {} }],
  ["redis and url", { redis: "client", url: "redis://127.0.0.1:1" }],
  ["numeric url", { url: 5 }],
  ["http url", { url: "http://127.0.0.1:6379" }],
  ["metrics string", { metrics: "yes" }],
  ["metrics path number", { metrics: { path: 5 } }],
  ["metrics unknown key", { metrics: { route: "/m" } }],
  ["observer number", { observer: 5 }],
  ["closeTimeoutMs negative", { closeTimeoutMs: -1 }],
  ["closeTimeoutMs fraction", { closeTimeoutMs: 1.5 }],
  ["rateLimit number", { rateLimit: 5 }],
  ["rateLimit unknown key", { rateLimit: { max: 10 } }],
  ["rules empty", { rateLimit: { rules: [] } }],
  ["rule limit 0", { rateLimit: { rules: [{ limit: 0, windowMs: 1000 }] } }],
  ["rule unknown algorithm", { rateLimit: { rules: [{ limit: 1, windowMs: 1000, algorithm: "leaky" }] } }],
  ["rules string", { rateLimit: { rules: "10/min" } }],
  ["key string", { rateLimit: { key: "ip" } }],
  ["cost 0", { rateLimit: { cost: 0 } }],
  ["allowList string", { rateLimit: { allowList: "1.2.3.4" } }],
  ["allowList number entry", { rateLimit: { allowList: [1] } }],
  ["hook onSend", { rateLimit: { hook: "onSend" } }],
  ["headers flag string", { rateLimit: { headers: { legacy: "yes" } } }],
  ["headers unknown key", { rateLimit: { headers: { "x-ratelimit-limit": true } } }],
  ["errorResponseBuilder object", { rateLimit: { errorResponseBuilder: {} } }],
  ["onExceeded number", { rateLimit: { onExceeded: 1 } }],
  ["onExceeding string", { rateLimit: { onExceeding: "log" } }],
  ["ban 0", { rateLimit: { ban: 0 } }],
  ["global string", { rateLimit: { global: "yes" } }],
  ["group with space", { rateLimit: { group: "a b" } }],
  ["onRedisError unknown", { rateLimit: { onRedisError: "ignore" } }],
  ["denyCache maxKeys 0", { rateLimit: { denyCache: { maxKeys: 0 } } }],
  ["batch maxSize 0", { rateLimit: { batch: { maxSize: 0 } } }],
  ["batch string", { rateLimit: { batch: "sometimes" } }],
  ["batch unknown key", { rateLimit: { batch: { size: 4 } } }],
  // null is a bad value, never "not given".
  ["metrics null", { metrics: null }],
  ["batch null", { rateLimit: { batch: null } }],
];

describe("options are checked whole at registration, before anything is sent", () => {
  for (const [what, options] of bad) {
    it(`${what} -> InvalidArgumentError, no command and no connection`, async () => {
      const withClient =
        options !== null && typeof options === "object" && (options as { redis?: unknown }).redis === "client"
          ? { ...(options as object), redis }
          : options;
      // Plugin-owned connections would show up as new connections; a given client's commands in MONITOR.
      const before = await connectionsReceived();
      const counted = await countCommands(server, () =>
        registrationError(
          withClient !== null && typeof withClient === "object" && !("redis" in withClient) && !("url" in withClient)
            ? { ...withClient, url: server.url }
            : withClient,
        ),
      );
      expect(counted.result).toBeInstanceOf(InvalidArgumentError);
      expect(counted.roundTrips).toBe(0);
      // Only countCommands' own probe connected: the plugin opened none.
      expect((await connectionsReceived()) - before).toBe(probeConnections);
    });
  }

  it("random unknown keys at every level are rejected by name", async () => {
    const random = mulberry32(4242);
    for (let i = 0; i < 30; i++) {
      const name = `k${Math.floor(random() * 1e6).toString(36)}`;
      const level = Math.floor(random() * 3);
      const options =
        level === 0
          ? { redis, [name]: 1 }
          : level === 1
            ? { redis, rateLimit: { [name]: 1 } }
            : { redis, rateLimit: { headers: { [name]: true } } };
      const err = await registrationError(options);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument.endsWith(name)).toBe(true);
    }
  });
});

describe("route configs are checked when the route is declared", () => {
  const badRoutes: Array<[string, unknown]> = [
    ["coordis number", { coordis: 5 }],
    ["coordis unknown key", { coordis: { ratelimit: true } }],
    ["rateLimit string", { coordis: { rateLimit: "yes" } }],
    ["rateLimit unknown key", { coordis: { rateLimit: { max: 3 } } }],
    ["bad rule", { coordis: { rateLimit: { rules: [{ limit: -1, windowMs: 1000 }] } } }],
    ["fractional cost", { coordis: { rateLimit: { cost: 1.5 } } }],
    ["cost above the smallest capacity", { coordis: { rateLimit: { cost: 20 } } }],
    ["bad hook", { coordis: { rateLimit: { hook: "onResponse" } } }],
    ["bad group", { coordis: { rateLimit: { group: "{x}" } } }],
    ["bad header flag", { coordis: { rateLimit: { headers: { draft: 1 } } } }],
    ["ban negative", { coordis: { rateLimit: { ban: -2 } } }],
    ["no rules anywhere", { coordis: { rateLimit: { key: () => "k" } } }],
    // null is a bad value, never "not given" (under global limits, rateLimit: null would limit the route).
    ["rateLimit null", { coordis: { rateLimit: null } }],
    ["group null", { coordis: { rateLimit: { group: null } } }],
  ];
  for (const [what, config] of badRoutes) {
    it(`${what} -> InvalidArgumentError, nothing sent`, async () => {
      const app = Fastify();
      await app.register(coordis, {
        redis,
        ...(what === "no rules anywhere" ? {} : { rateLimit: { rules: [{ name: "m", limit: 10, windowMs: 1000 }] } }),
      });
      const counted = await countCommands(server, async () => {
        try {
          app.get("/x", { config: config as never }, async () => "ok");
          return undefined;
        } catch (err) {
          return err;
        }
      });
      expect(counted.result).toBeInstanceOf(InvalidArgumentError);
      expect((counted.result as InvalidArgumentError).argument).toMatch(/^route GET \/x: config/);
      expect(counted.roundTrips).toBe(0);
      await app.close();
    });
  }
});

describe("micro-batching of the limiter calls", () => {
  async function burst(batch: "auto" | boolean) {
    const app = Fastify();
    await app.register(coordis, {
      redis,
      rateLimit: {
        rules: [{ name: "m", limit: 30, windowMs: 60_000 }],
        key: (req) => `${String(batch)}:${req.headers["x-key"]}`,
        batch,
      },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    await app.ready();
    await app.inject({ method: "GET", url: "/x", headers: { "x-key": "warm-up" } }); // loads the scripts
    const counted = await countCommands(server, () =>
      Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          app.inject({ method: "GET", url: "/x", headers: { "x-key": i < 35 ? "same" : `other-${i}` } }),
        ),
      ),
    );
    await app.close();
    const codes = counted.result.map((r) => r.statusCode);
    return { codes, evalsha: (counted.sent.evalsha ?? 0) + (counted.sent.eval ?? 0) };
  }

  it('"auto" (default): requests in flight together share script calls, each decided on its own', async () => {
    const { codes, evalsha } = await burst("auto");
    expect(codes.slice(0, 35).filter((c) => c === 200)).toHaveLength(30);
    expect(codes.slice(0, 35).filter((c) => c === 429)).toHaveLength(5);
    expect(codes.slice(35)).toEqual([200, 200, 200, 200, 200]);
    // Every call of the burst goes through the batches (inject spreads the 40 requests over 4 event-loop turns): none
    // is sent on its own first, as a call alone in flight once was (5 script calls).
    expect(evalsha).toBeLessThanOrEqual(4);
  });

  it("false: one script call per request, same decisions", async () => {
    const { codes, evalsha } = await burst(false);
    expect(codes.slice(0, 35).filter((c) => c === 200)).toHaveLength(30);
    expect(codes.slice(35)).toEqual([200, 200, 200, 200, 200]);
    expect(evalsha).toBe(40);
  });
});
