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
