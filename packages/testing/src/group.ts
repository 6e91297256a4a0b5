import { validate } from "@coordis/core";
import { startRedis } from "./redis-server.js";
import type { RedisServer, StartRedisOptions } from "./server-types.js";

/** N independent Redis masters (no replication between them), e.g. for Redlock. */
export interface RedisGroup {
  /** The servers, in start order. */
  readonly servers: readonly RedisServer[];
  /** Their URLs, in the same order. */
  readonly urls: readonly string[];
  /** Their unrestricted URLs (equal to `urls` unless `leastPrivilege` is set). */
  readonly adminUrls: readonly string[];
  /** Stops every server. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `n` independent masters (in parallel), each on its own free port and temp dir.
 * @example const group = await startRedisGroup(3); const clients = group.servers.map((s) => s.client());
 */
export async function startRedisGroup(n: number, options: StartRedisOptions = {}): Promise<RedisGroup> {
  validate.positiveInteger("n", n);
  const results = await Promise.allSettled(Array.from({ length: n }, () => startRedis(options)));
  const servers = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed !== undefined) {
    await Promise.all(servers.map((s) => s.stop()));
    throw failed.reason;
  }
  return {
    servers,
    urls: servers.map((s) => s.url),
    adminUrls: servers.map((s) => s.adminUrl),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}
