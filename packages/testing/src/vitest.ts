/**
 * Vitest helpers for test files run with `@coordis/testing/vitest-setup` as their global setup.
 *
 * ```ts
 * import { sharedClients } from "@coordis/testing/vitest";
 * describe("...", () => {
 *   const clients = sharedClients();
 *   it("...", async () => {
 *     await new Mutex(clients.redis, "job").using(async () => {});
 *     expect(await clients.admin.keys("coordis:*")).toEqual([]);
 *   });
 * });
 * ```
 */
import { connect, type RedisClient } from "@coordis/core";
import { afterAll, beforeAll, inject } from "vitest";
import { type FaultProxy, startProxy } from "./proxy.js";
import { startRedis } from "./redis-server.js";
import type { RedisServer, StartRedisOptions } from "./server-types.js";
import type {} from "./vitest-setup.js";

/** Connections to the run's shared standalone server; see {@link sharedClients}. */
export interface SharedClients {
  /** As the least-privileged ACL user of the setup: what Coordis code under test uses. */
  readonly redis: RedisClient;
  /** As the default user: to inspect or tamper with the server from outside the code under test. */
  readonly admin: RedisClient;
}

/**
 * Opens two connections to the shared standalone server (`coordisRedisUrl` and `coordisAdminRedisUrl`) before the
 * tests of the calling file or `describe` block and closes them after. Read them inside tests and hooks.
 */
export function sharedClients(): SharedClients {
  let redis: RedisClient | undefined;
  let admin: RedisClient | undefined;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisAdminRedisUrl"));
  });
  afterAll(() => {
    redis?.disconnect();
    admin?.disconnect();
  });
  const opened = (client: RedisClient | undefined): RedisClient => {
    if (client === undefined) throw new Error("sharedClients(): the clients exist inside tests and hooks only");
    return client;
  };
  return {
    get redis() {
      return opened(redis);
    },
    get admin() {
      return opened(admin);
    },
  };
}

/** A server of the calling file or `describe` block behind a fault proxy; see {@link proxiedServer}. */
export interface ProxiedServer {
  /** The server (for `restart()`, `url`, `adminClient()`...). */
  readonly server: RedisServer;
  /** The fault proxy in front of it: clients of the code under test connect to `proxy.url`. */
  readonly proxy: FaultProxy;
  /** A client of the server itself, past the proxy (as the least-privileged user when the server has one). */
  readonly direct: RedisClient;
}

/**
 * Starts a `redis-server` (with `options`), a fault proxy in front of it and a direct client before the tests of the
 * calling file or `describe` block, and stops them after (after the block's own `afterAll` hooks, which run first).
 * Read the fields inside tests and hooks.
 */
export function proxiedServer(options: StartRedisOptions = {}): ProxiedServer {
  let started: { server: RedisServer; proxy: FaultProxy; direct: RedisClient } | undefined;
  beforeAll(async () => {
    const server = await startRedis(options);
    try {
      const proxy = await startProxy({ target: server });
      started = { server, proxy, direct: server.client() };
    } catch (err) {
      await server.stop();
      throw err;
    }
  });
  afterAll(async () => {
    if (started === undefined) return;
    const { server, proxy } = started;
    started = undefined;
    await proxy.close();
    await server.stop(); // closes `direct`, made by server.client()
  });
  const get = () => {
    if (started === undefined) throw new Error("proxiedServer(): the server exists inside tests and hooks only");
    return started;
  };
  return {
    get server() {
      return get().server;
    },
    get proxy() {
      return get().proxy;
    },
    get direct() {
      return get().direct;
    },
  };
}
