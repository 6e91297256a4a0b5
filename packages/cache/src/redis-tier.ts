import { createHash } from "node:crypto";
import {
  type CoordisObserver,
  corkUntilTickEnd,
  isCluster,
  notifyEvent,
  type RedisClient,
  randomToken,
  runScript,
  type ScriptArgs,
  type ScriptDef,
  type ScriptKeys,
  toCoordisError,
  withCommandDeadline,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import type { CircuitBreaker } from "./circuit-breaker.js";
import type { TagPair } from "./l1.js";
import type { CacheKeys, EntrySettings } from "./options.js";
import { cacheScripts } from "./scripts.generated.js";

/** What one read of an entry found. */
export interface L2Read {
  /** 0 miss, 1 fresh, 2 stale (tags already checked: an entry with an outdated tag is a miss). */
  readonly state: 0 | 1 | 2;
  readonly data: string;
  /** Deadlines converted to `performance.now()` readings. */
  readonly fresh: number;
  readonly stale: number;
  readonly tags: readonly TagPair[];
  /** The fill lock is ours (taken, or registered with `register`). */
  readonly locked: boolean;
}

/** What a read that found no usable entry returns (deadlines unused). */
const MISS: L2Read = { state: 0, data: "", fresh: 0, stale: 0, tags: [], locked: false };

/** Random bytes of a fill token. */
const FILL_TOKEN_BYTES = 12;

/** A fresh fill token (also the fill-lock token). */
export function fillToken(): string {
  return randomToken(FILL_TOKEN_BYTES);
}

const warnedClients = new WeakSet<object>();

/**
 * The Redis tier of one namespace: entries, their fill locks and tag versions, every call through the circuit
 * breaker. One script per state change (see lua/cache/).
 */
export class RedisTier {
  readonly #redis: RedisClient;
  readonly #keys: CacheKeys;
  readonly #lockTtlMs: number;
  readonly #breaker: CircuitBreaker;
  /** A Cluster client: a plain read is a script there (see #plainRead). */
  readonly #cluster: boolean;

  constructor(redis: RedisClient, keys: CacheKeys, lockTtlMs: number, breaker: CircuitBreaker) {
    this.#redis = redis;
    this.#cluster = isCluster(redis);
    this.#keys = keys;
    this.#lockTtlMs = lockTtlMs;
    this.#breaker = breaker;
  }

  /**
   * Reads an entry and checks its tags. `lockToken` non-empty = when the entry is unusable, take the fill lock with
   * it (one script, lua/cache/get.lua); `register` = when another caller holds the lock and the entry is missing
   * (or its tags turned out to be invalid), register the token in the entry as this caller's fill token instead (a
   * stale entry is served, not loaded, so it gets none). An empty `lockToken` is a plain read: on a Cluster one script
   * (lua/cache/read.lua), otherwise HMGET of the entry's fields and TIME in one write, judged here on that server time.
   */
  async read(k: string, lockToken: string, tags: readonly string[], register = false): Promise<L2Read> {
    const keys = this.#keys.entry(k);
    // The deadlines Redis sends are relative to when it judged the entry, which is after this moment and before the
    // reply arrives: counted from now, they are never later than Redis' own, however long the reply takes.
    const sent = performance.now();
    // Tags we already know the entry should carry are read in parallel with the entry itself. They live in other
    // slots than the entry (one slot per tag), so one script cannot read both on a cluster. Both calls are always
    // awaited: when one fails (Redis unavailable) the other must not be left to reject with nobody listening.
    const [entry, prefetched] = await Promise.allSettled([
      lockToken === ""
        ? this.#plainRead(keys[0])
        : this.#script(cacheScripts.get, keys, [lockToken, this.#lockTtlMs, register ? 2 : 0, ""]),
      this.#readTags(tags),
    ]);
    if (entry.status === "rejected") throw entry.reason;
    if (prefetched.status === "rejected") throw prefetched.reason;
    const known = prefetched.value;
    const reply = entry.value;
    // A miss is one integer (whether the lock is ours); a hit carries its deadlines relative to server time.
    if (typeof reply === "number") return { ...MISS, locked: reply === 1 };
    const [data, freshInMs, staleInMs, tagsJson, locked] = reply;
    let read: L2Read = {
      state: freshInMs > 0 ? 1 : 2,
      data,
      fresh: sent + freshInMs,
      stale: sent + staleInMs,
      tags: tagsJson === null || tagsJson === "" ? [] : (JSON.parse(tagsJson) as TagPair[]),
      locked: locked === 1,
    };
    if (read.tags.length === 0) return read;
    const missing = read.tags.filter(([t]) => !known.has(t)).map(([t]) => t);
    if (missing.length > 0) for (const [t, v] of await this.#readTags(missing)) known.set(t, v);
    if (read.tags.every(([t, v]) => known.get(t) === v)) return read;
    // On a Cluster the versions read beside the entry come from other masters, maybe from before the load that wrote
    // this entry created them: read again (after the entry) before judging it outdated. One connection answers in
    // order, so there they were read after the entry.
    const early = this.#cluster ? read.tags.filter(([t, v]) => known.get(t) !== v && !missing.includes(t)) : [];
    if (early.length > 0) for (const [t, v] of await this.#readTags(early.map(([t]) => t))) known.set(t, v);
    if (early.length > 0 && read.tags.every(([t, v]) => known.get(t) === v)) return read;
    // A tag was invalidated after this value was computed: it is a miss. Take the lock if asked to, unless the entry
    // was written again since it was read (a load another caller held the lock for): that one is judged anew.
    if (lockToken !== "" && !read.locked) {
      const args = [lockToken, this.#lockTtlMs, register ? 3 : 1, tagsJson ?? ""] as const;
      const again = await this.#script(cacheScripts.get, keys, args);
      const replaced = typeof again !== "number" && (again[3] ?? "") !== (tagsJson ?? "");
      if (replaced) return this.read(k, lockToken, tags, register);
      read = { ...read, locked: typeof again === "number" ? again === 1 : again[4] === 1 };
    }
    return { ...read, state: 0, data: "", tags: [] };
  }

  /**
   * A plain read, answered like get.lua's reply (a miss or an entry past its stale deadline is 0). On a Cluster: one
   * script of one key (lua/cache/read.lua), which the client redirects on MOVED/ASK while a slot is migrated or after
   * it moved (a pipeline holding TIME is not redirected) and which runs on the entry's master. On one connection
   * (standalone, Sentinel): HMGET and TIME, written in order in one write (no script); TIME follows HMGET on the same
   * connection, so the entry is judged at most a few microseconds later than it was read: never fresher than it is.
   */
  async #plainRead(key: string): Promise<number | [string, number, number, string | null, number]> {
    if (this.#cluster) return this.#script(cacheScripts.read, [key], []);
    const [fields, time] = await this.#command(() => {
      const redis = this.#redis;
      // Corked like a script call (one count per command): the tick's commands leave in one write.
      corkUntilTickEnd(redis);
      corkUntilTickEnd(redis);
      // Two plain commands (cheaper for the client than a pipeline object).
      const pending = Promise.all([
        redis.hmget(key, "v", "f", "s", "t"),
        redis.time() as Promise<unknown> as Promise<string[]>,
      ]);
      // The deadline a script call gets on this client (none where ioredis' commandTimeout covers the commands).
      return withCommandDeadline(redis, pending, "a cache read (HMGET + TIME)");
    });
    const [data, f, s, t] = fields;
    if (data === null || data === undefined) return 0;
    // TIME: [seconds, microseconds]; whole server milliseconds as now_ms() computes them in the scripts.
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const staleInMs = Number(s) - now;
    if (!(staleInMs > 0)) return 0;
    return [data, Number(f) - now, staleInMs, t ?? null, 0];
  }

  /** The current version of each tag, created when missing; read before loading so a concurrent invalidation wins. */
  async tagVersions(entry: EntrySettings): Promise<TagPair[]> {
    const ttl = entry.ttlMs + entry.staleMs + this.#lockTtlMs;
    const versions = await Promise.all(
      entry.tags.map((t) => this.#script(cacheScripts.tagVersion, [this.#keys.tag(t)], [fillToken(), ttl])),
    );
    return entry.tags.map((t, i) => [t, versions[i] as string] as const);
  }

  /**
   * Writes a value (one script). With `fill` non-empty the write is conditional on that fill token (see
   * lua/cache/set.lua). @returns 0 when refused, 1 when written where there was no entry and no caller waited for
   * one (a load nobody else needs to hear of), 2 when written over an entry, a waiting caller's mark or a registered
   * fill token (replicas may hold the key or wait for it)
   */
  async write(
    k: string,
    data: string,
    entry: EntrySettings,
    pairs: readonly TagPair[],
    fill: string,
  ): Promise<0 | 1 | 2> {
    const written = await this.#script(cacheScripts.set, this.#keys.entry(k), [
      data,
      entry.ttlMs,
      entry.ttlMs + entry.staleMs,
      pairs.length > 0 ? JSON.stringify(pairs) : "",
      fill,
    ]);
    return written === 1 || written === 2 ? written : 0;
  }

  /** Drops fill token `fill` (and the lock, if it holds it). Fire and forget: its outcome does not matter. */
  unlock(k: string, fill: string): void {
    void this.#script(cacheScripts.unlock, this.#keys.entry(k), [fill]).catch(() => {});
  }

  /** Deletes an entry (and any fill token). @returns whether it existed */
  async delete(k: string): Promise<boolean> {
    return (await this.#script(cacheScripts.delete, this.#keys.entry(k), [])) === 1;
  }

  /**
   * Deletes an entry (and its fill lock) only while it still holds `data`, a value read from it.
   * @returns whether it was deleted
   */
  async deleteIfValue(k: string, data: string): Promise<boolean> {
    const sha1 = createHash("sha1").update(data, "utf8").digest("hex");
    return (await this.#script(cacheScripts.deleteIfValue, this.#keys.entry(k), [sha1])) === 1;
  }

  /**
   * After a change of key `k` (or of tag `t`) that failed as unavailable, on a Cluster: one more call on the connection
   * the change went through (to the master of its slot), so that once it is answered the change has run there or never
   * will (a connection answers in order). Standalone and Sentinel, or a clear: false at once, nothing sent (there the
   * invalidation goes on the change's own connection, behind it).
   * @returns whether the master answered
   */
  async fence(change: { k?: string; t?: string }): Promise<boolean> {
    if (!this.#cluster) return false;
    if (change.k !== undefined) await this.#script(cacheScripts.read, [this.#keys.entry(change.k)[0]], []);
    else if (change.t !== undefined) await this.#command(() => this.#redis.get(this.#keys.tag(change.t as string)));
    else return false;
    return true;
  }

  /** Deletes a tag's version: every entry recorded under it becomes a miss. */
  async deleteTag(t: string): Promise<void> {
    await this.#command(() => this.#redis.del(this.#keys.tag(t)));
  }

  /**
   * SCAN + UNLINK of every key of the namespace, on every master. `onWrite` is called before the first UNLINK is
   * sent: until then a failure has changed nothing.
   */
  async clear(onWrite: () => void): Promise<void> {
    const nodes: Redis[] = isCluster(this.#redis) ? (this.#redis as Cluster).nodes("master") : [this.#redis as Redis];
    for (const node of nodes) {
      for (const match of this.#keys.patterns) {
        let cursor = "0";
        do {
          const [next, keys] = await this.#command(() => node.scan(cursor, "MATCH", match, "COUNT", 500));
          cursor = next;
          if (keys.length > 0) {
            // One UNLINK per key: on a cluster node the keys of one SCAN page live in different slots.
            const pipeline = node.pipeline();
            for (const key of keys) pipeline.unlink(key);
            await this.#command(async () => {
              onWrite();
              // A pipeline resolves with each command's error in its reply (NOPERM without +unlink, MOVED or READONLY
              // after a reshard or failover): the first one fails the clear, which did not delete those keys.
              for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err;
            });
          }
        } while (cursor !== "0");
      }
    }
  }

  /** Reports (once per client, also on the console) a Redis that refuses writes when full instead of evicting. */
  async checkEvictionPolicy(observer: CoordisObserver | undefined, namespace: string): Promise<void> {
    try {
      const policy = (await this.#redis.config("GET", "maxmemory-policy")) as unknown as string[];
      const memory = (await this.#redis.config("GET", "maxmemory")) as unknown as string[];
      const name = String(policy[1] ?? "");
      const max = Number(memory[1] ?? 0);
      if (name !== "noeviction" || !(max > 0)) return;
      notifyEvent(observer, {
        primitive: "cache",
        type: "eviction-policy",
        attributes: { namespace, policy: name, maxmemory: max },
      });
      if (!warnedClients.has(this.#redis)) {
        warnedClients.add(this.#redis);
        console.warn(
          `@coordis/cache: Redis has maxmemory ${max} with maxmemory-policy noeviction: when it is full, cache writes ` +
            "fail instead of evicting old entries. Give the cache its own Redis (or DB) with allkeys-lru or allkeys-lfu.",
        );
      }
    } catch {
      // CONFIG is often disabled on managed Redis: nothing to check then.
    }
  }

  async #readTags(tags: readonly string[]): Promise<Map<string, string | null>> {
    if (tags.length === 0) return new Map();
    const values = await Promise.all(tags.map((t) => this.#command(() => this.#redis.get(this.#keys.tag(t)))));
    return new Map(tags.map((t, i) => [t, values[i] ?? null]));
  }

  /** Runs one script through the circuit breaker. */
  #script<K extends readonly string[], A extends readonly string[], R>(
    def: ScriptDef<K, A, R>,
    keys: ScriptKeys<K>,
    args: ScriptArgs<A>,
  ): Promise<R> {
    return this.#breaker.run(() => runScript(this.#redis, def, keys, args));
  }

  /** Runs one plain command through the circuit breaker, mapping errors to Coordis errors. */
  #command<T>(fn: () => Promise<T>): Promise<T> {
    return this.#breaker.run(async () => {
      try {
        return await fn();
      } catch (err) {
        throw toCoordisError(err);
      }
    });
  }
}
