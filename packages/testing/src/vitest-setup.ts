/**
 * Vitest global setup: starts one standalone server, one group of 3 independent masters and one 3-master Redis
 * Cluster once per run, provides their URLs to every test file, and stops them at the end.
 *
 * Least privilege: the provided URLs authenticate as the ACL user of `aclRules()` (keys and channels under
 * `coordis:*`, only the commands Coordis needs), so every test using them proves Coordis needs nothing more. Use
 * `testPrefix()` for keys (it returns `coordis:<label>-<hex>`), and the `coordisAdmin*` URLs to inspect the
 * server with commands outside that set (KEYS, TTL, CONFIG...).
 *
 * ```ts
 * // vitest.config.ts
 * export default defineConfig({ test: { globalSetup: ["@coordis/testing/vitest-setup"] } });
 * // a test
 * import { inject } from "vitest";
 * const redis = connect(inject("coordisRedisUrl"));
 * ```
 * Set `COORDIS_TEST_TOPOLOGIES=standalone` (comma list of standalone, group, cluster) to start fewer.
 */
import type {} from "vitest";
import type { TestProject } from "vitest/node";
import { type RedisCluster, startRedisCluster } from "./cluster.js";
import { type RedisGroup, startRedisGroup } from "./group.js";
import { startRedis } from "./redis-server.js";
import type { RedisServer } from "./server-types.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the shared standalone server. */
    coordisRedisUrl: string;
    /** URLs of the 3 independent masters (empty when not started). */
    coordisGroupUrls: string[];
    /** `redis+cluster://` URL of the 3-master cluster ("" when not started). */
    coordisClusterUrl: string;
    /** Unrestricted (default user) URL of the shared standalone server. */
    coordisAdminRedisUrl: string;
    /** Unrestricted URLs of the 3 independent masters. */
    coordisAdminGroupUrls: string[];
    /** Unrestricted `redis+cluster://` URL of the cluster ("" when not started). */
    coordisAdminClusterUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const wanted = new Set((process.env.COORDIS_TEST_TOPOLOGIES ?? "standalone,group,cluster").split(","));
  let standalone: RedisServer | undefined;
  let group: RedisGroup | undefined;
  let cluster: RedisCluster | undefined;
  const teardown = async () => {
    await Promise.all([standalone?.stop(), group?.stop(), cluster?.stop()]);
  };
  try {
    [standalone, group, cluster] = await Promise.all([
      startRedis({ leastPrivilege: true }),
      wanted.has("group") ? startRedisGroup(3, { leastPrivilege: true }) : Promise.resolve(undefined),
      wanted.has("cluster") ? startRedisCluster({ masters: 3, leastPrivilege: true }) : Promise.resolve(undefined),
    ]);
  } catch (err) {
    await teardown();
    throw err;
  }
  project.provide("coordisRedisUrl", standalone.url);
  project.provide("coordisGroupUrls", group ? [...group.urls] : []);
  project.provide("coordisClusterUrl", cluster?.url ?? "");
  project.provide("coordisAdminRedisUrl", standalone.adminUrl);
  project.provide("coordisAdminGroupUrls", group ? [...group.adminUrls] : []);
  project.provide("coordisAdminClusterUrl", cluster?.adminUrl ?? "");
  return teardown;
}
