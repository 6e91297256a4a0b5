/**
 * A user's own ioredis client, built with the options users really set, given to every Coordis primitive: each works
 * as it does with a connect() client. (The options Coordis cannot work with are refused: refused-options.test.ts.)
 */
import { safeRedisOptions } from "@coordis/core";
import { type RedisServer, startRedis } from "@coordis/testing";
import { Redis, type RedisOptions } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHECKS, type MakeClient } from "./exercise.js";

let servers: RedisServer[] = [];
const clients: Redis[] = [];
beforeAll(async () => {
  servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(servers.map((s) => s.stop()));
});

/**
 * Clients built with `options` on top of safeRedisOptions. `ready`: each is handed over once connected (for
 * `enableOfflineQueue: false`, where a command sent before that fails by design); otherwise at once, still connecting
 * (or, with lazyConnect, not even that).
 */
function maker(options: RedisOptions, ready = false): MakeClient {
  return async (node = 0) => {
    const server = servers[node] as RedisServer;
    const client = new Redis({ ...safeRedisOptions, host: server.host, port: server.port, ...options });
    client.on("error", () => {});
    clients.push(client);
    if (ready) await new Promise((resolve) => client.once("ready", resolve));
    return client;
  };
}

const MATRIX: ReadonlyArray<readonly [string, RedisOptions]> = [
  ["ioredis defaults (RESP3, legacy reply mapping)", {}],
  ["protocol: 3, replyMapping: legacy", { protocol: 3, replyMapping: "legacy" }],
  ["protocol: 2", { protocol: 2 }],
  ["enableAutoPipelining: true", { enableAutoPipelining: true }],
  ["lazyConnect: true", { lazyConnect: true }],
  ["maxRetriesPerRequest: 0", { maxRetriesPerRequest: 0 }],
  ["maxRetriesPerRequest: null", { maxRetriesPerRequest: null }],
  ["connectionName", { connectionName: "my-app" }],
  ["enableReadyCheck: false", { enableReadyCheck: false }],
  ["readOnly: true (a standalone master ignores it)", { readOnly: true }],
  ["commandTimeout: 600000", { commandTimeout: 600_000 }],
];

describe.each(MATRIX)("a client built with %s", (label, options) => {
  const tag = label.replace(/[^A-Za-z0-9]/g, "").slice(0, 24);
  it.each(CHECKS)("%s works", async (_name, check) => {
    await check(maker(options), tag);
  });
});

describe("a client built with db: 3", () => {
  it("every primitive works, and every key it wrote is in database 3", async () => {
    const admin = new Redis({ host: servers[0]?.host, port: servers[0]?.port });
    clients.push(admin);
    await admin.flushall();
    for (const [, check] of CHECKS) await check(maker({ db: 3 }), "db3");
    expect(await admin.dbsize()).toBe(0);
    await admin.select(3);
    const keys = await admin.keys("*");
    expect(keys.filter((k) => !k.startsWith("coordis:"))).toEqual([]);
    expect(keys.length).toBeGreaterThan(10);
  });
});

describe("a client built with a subscriber already on it", () => {
  it("on RESP3 (ioredis 6's default) every primitive works through it", async () => {
    const make = maker({});
    const subscribed: MakeClient = async (node) => {
      const client = await make(node);
      await client.subscribe("someone-elses-channel");
      return client;
    };
    for (const [, check] of CHECKS) await check(subscribed, "sub3");
  });
});
