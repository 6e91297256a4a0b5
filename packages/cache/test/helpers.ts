import type { OperationEvent, RedisClient } from "@coordis/core";
import type { RedisSessionStore, SessionData } from "../src/index.js";

/** `{tier}/{result}` of every cache `get` operation recorded. */
export function tiers(rec: { ops: OperationEvent[] }): string[] {
  return rec.ops
    .filter((o) => o.primitive === "cache" && o.op === "get")
    .map((o) => `${o.attributes?.tier}/${o.attributes?.result}`);
}

/** Promise wrappers over a session store's callback API. */
export function sessionApi(store: RedisSessionStore) {
  return {
    get: (id: string) =>
      new Promise<SessionData | null | undefined>((resolve, reject) =>
        store.get(id, (err, s) => (err ? reject(err) : resolve(s))),
      ),
    set: (id: string, s: SessionData) =>
      new Promise<void>((resolve, reject) => store.set(id, s, (err) => (err ? reject(err) : resolve()))),
    touch: (id: string, s: SessionData) =>
      new Promise<void>((resolve, reject) => store.touch(id, s, (err) => (err ? reject(err) : resolve()))),
    destroy: (id: string) =>
      new Promise<void>((resolve, reject) => store.destroy(id, (err) => (err ? reject(err) : resolve()))),
  };
}

/**
 * Stores `value` under cache key `k` as `Cache.set` does (JSON, fresh for `ttlMs`, no tags) but announces nothing: a
 * change whose invalidation was lost. `redis` needs HSET, DEL, PEXPIRE and TIME (an admin connection).
 */
export async function writeUnannounced(
  redis: RedisClient,
  cache: { prefix: string; namespace: string },
  k: string,
  value: unknown,
  ttlMs = 600_000,
): Promise<void> {
  const [seconds, micros] = (await redis.time()) as unknown as [string, string];
  const until = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) + ttlMs;
  const key = `${cache.prefix}:cache:{${cache.namespace}:${k}}`;
  await redis.del(key, `${key}:lock`);
  await redis.hset(key, "v", JSON.stringify(value), "f", until, "s", until, "t", "");
  await redis.pexpire(key, ttlMs);
}
