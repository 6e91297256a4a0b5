import {
  CoordisError,
  type CoordisObserver,
  DEFAULT_PREFIX,
  errorOf,
  InvalidArgumentError,
  isCluster,
  notifyOperation,
  type RedisClient,
  runScript,
  toCoordisError,
  validate,
  validateName,
  validatePrefix,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { assertStorableText } from "./codec.js";
import { cacheScripts } from "./scripts.generated.js";
import { READ_DIGEST, rememberDigest, SessionDigests } from "./session-digest.js";

/** Default session lifetime when the cookie carries no expiry, ms (1 day). */
export const DEFAULT_SESSION_TTL_MS = 24 * 60 * 60 * 1000;
/** Default lifetime of a logout tombstone, ms (10 minutes): longer than any request that may still save. */
export const DEFAULT_TOMBSTONE_MS = 10 * 60 * 1000;

/**
 * How sessions are turned into text and back (connect-redis' `serializer`). Default JSON. `stringify` must return
 * well-formed Unicode (no lone UTF-16 surrogate, which Redis would store altered).
 */
export interface SessionSerializer {
  stringify(session: object): string;
  parse(text: string): unknown;
}

/** Options of {@link RedisSessionStore}. */
export interface SessionStoreOptions {
  /** Key prefix; sessions live at `<prefix>:sess:{<sessionId>}`. Default `"coordis"`. */
  prefix?: string;
  /**
   * Lifetime of a session, ms. A number is used when the session's cookie has neither `expires` nor `maxAge`
   * (default 1 day); a function of the session (connect-redis' `ttl` function, in ms) decides for every session.
   */
  ttlMs?: number | ((session: SessionData) => number);
  /**
   * How long a destroyed session id stays destroyed, ms; default 10 minutes. A `set` of that id within this time
   * (a slow request finishing after logout) is refused, so the session cannot come back.
   */
  tombstoneMs?: number;
  /** Receives `session` operations (`get`, `set`, `destroy`, `touch`, `all`, `length`, `clear`). */
  observer?: CoordisObserver;
  /** Custom serializer (`{ stringify, parse }`), e.g. to store dates or encrypt. Default `JSON`. */
  serializer?: SessionSerializer;
  /**
   * Activity does not renew a session's expiry: `touch` does nothing, and neither does a `set` whose data did not
   * change. The session then expires at the end of the lifetime it was last written with. Default false.
   */
  disableTouch?: boolean;
}

/** The cookie fields the store reads (from @fastify/session's and express-session's session cookie). */
export interface SessionCookie {
  expires?: Date | string | null | false;
  maxAge?: number | null;
  originalMaxAge?: number | null;
}

/**
 * What the store accepts: any session object with an optional cookie — a @fastify/session or express-session
 * session, or a {@link SessionData}.
 */
export interface StoredSession {
  cookie?: SessionCookie | undefined;
}

/** A session as the store returns it: the decoded data, with an optional cookie. */
export interface SessionData extends StoredSession {
  [key: string]: unknown;
}

/** Node-style callback of the store interface. */
export type StoreCallback = (err?: unknown) => void;
/** Callback of {@link RedisSessionStore.get}: the session, or `null` when there is none. */
export type StoreGetCallback<S = SessionData> = (err: unknown, session?: S | null) => void;

/** Keys per SCAN step and per pipelined batch of `all` / `clear`. */
const SCAN_COUNT = 200;

const SESSION_STORE_OPTION_KEYS = ["prefix", "ttlMs", "tombstoneMs", "observer", "serializer", "disableTouch"] as const;

/**
 * A session store with the `@fastify/session` store interface in callback style: `get`, `set`, `destroy`, `touch`,
 * plus connect-redis' `all`, `length` and `clear`, on ioredis (for express-session, forward to it from a subclass of
 * express-session's `Store`). Each session is one key
 * `<prefix>:sess:{<id>}` expiring with the session's cookie (or after `ttlMs`).
 *
 * - A session read by `get` and saved back unchanged (only its cookie's expiry moved, as @fastify/session's rolling
 *   sessions do on every request) only has its expiry renewed: a request that did not change the session never
 *   overwrites what a concurrent request wrote, on this replica or another. Two requests that both change it: the
 *   last write wins. `touch` only renews the expiry too.
 * - `destroy` leaves a tombstone for `tombstoneMs`: a request that started before logout and saves its session after
 *   it is refused (its callback gets no error; the session simply stays destroyed).
 * - `get`, `set`, `destroy` and `touch` are each one atomic script or one round trip, and the key carries its id as
 *   hash tag (Redis Cluster ready). `all`, `length` and `clear` walk the prefix with SCAN (an optional ACL extra).
 *
 * It lives in `@coordis/cache` because it is the same job on the same Redis: short-lived, read-mostly data that may
 * be evicted under memory pressure (a lost session is a re-login, never corrupted coordination state).
 *
 * @example
 * app.register(fastifySession, { secret, store: new RedisSessionStore(redis) });
 */
export class RedisSessionStore {
  /** The key prefix. */
  readonly prefix: string;
  readonly #redis: RedisClient;
  readonly #ttlMs: number | ((session: SessionData) => number);
  readonly #tombstoneMs: number;
  readonly #observer: CoordisObserver | undefined;
  readonly #serializer: SessionSerializer;
  readonly #disableTouch: boolean;
  readonly #digests: SessionDigests;

  /** @throws InvalidArgumentError for an invalid or unknown option */
  constructor(redis: RedisClient, options: SessionStoreOptions = {}) {
    const opts = validate.options<SessionStoreOptions>("options", options, SESSION_STORE_OPTION_KEYS);
    this.#redis = validate.redisClient("redis", redis);
    this.prefix = validatePrefix(opts.prefix ?? DEFAULT_PREFIX, "options.prefix");
    this.#ttlMs =
      opts.ttlMs === undefined
        ? DEFAULT_SESSION_TTL_MS
        : typeof opts.ttlMs === "function"
          ? opts.ttlMs
          : validate.durationMs("options.ttlMs", opts.ttlMs);
    this.#tombstoneMs =
      opts.tombstoneMs === undefined
        ? DEFAULT_TOMBSTONE_MS
        : validate.durationMs("options.tombstoneMs", opts.tombstoneMs);
    this.#observer = validate.observer("options.observer", opts.observer);
    if (opts.serializer !== undefined) {
      const ser = validate.options<SessionSerializer>("options.serializer", opts.serializer);
      validate.func("options.serializer.stringify", ser.stringify);
      validate.func("options.serializer.parse", ser.parse);
    }
    this.#serializer = opts.serializer ?? JSON;
    this.#digests = new SessionDigests((data) => this.#encode(data));
    this.#disableTouch =
      opts.disableTouch === undefined ? false : validate.boolean("options.disableTouch", opts.disableTouch);
  }

  /**
   * Reads a session. Calls back with `null` when there is none (or it was destroyed). The cookie's `expires` is
   * the key's actual expiry (renewals move it without rewriting the data).
   */
  get<S = SessionData>(sessionId: string, callback: StoreGetCallback<S>): void {
    this.#run("get", callback, sessionId, async (key) => {
      const [text, pttl] = await Promise.all([this.#redis.get(key), this.#redis.pttl(key)]);
      if (text === null) return null;
      const data = this.#decode(text);
      const cookie = data.cookie as { expires?: unknown } | undefined | null;
      // A cookie without an expiry date (none, null, or a falsy `expires: false` of older express-session apps: a
      // browser-session cookie) keeps none.
      if (cookie !== null && typeof cookie === "object" && cookie.expires && pttl > 0) {
        cookie.expires = new Date(Date.now() + pttl).toISOString();
      }
      // The digest is inherited, not data: it is not stored, not compared by deep equality, and session middlewares
      // copy it (for...in) into the session object they later hand to set().
      const session = Object.create({ [READ_DIGEST]: this.#digests.of(key, data) }) as SessionData;
      // Defined, not assigned: a stored "__proto__" field stays a field (assigned, it would replace the prototype,
      // dropping the digest and making its contents look like inherited session data).
      for (const name of Object.keys(data)) {
        Object.defineProperty(session, name, {
          value: data[name],
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return session as S;
    });
  }

  /**
   * Stores a session for its remaining lifetime (`ttlMs` function, else the cookie, else `ttlMs`); an already
   * expired cookie deletes it. Refused silently for a destroyed id (see the class description). A session whose data
   * is unchanged since `get` only has its expiry renewed (nothing when `disableTouch`), or is written again when its
   * key is gone meanwhile (expired, evicted).
   */
  set(sessionId: string, session: StoredSession, callback: StoreCallback): void {
    this.#run("set", callback, sessionId, async (key) => {
      const data = this.#dataOf(session);
      const ttl = this.#ttlOf(session);
      if (ttl <= 0) {
        await this.#redis.del(key);
        return undefined;
      }
      const read = (session as Record<string, unknown>)[READ_DIGEST];
      const digest = typeof read === "string" ? this.#digests.of(key, data) : undefined;
      const unchanged = digest !== undefined && read === digest;
      if (unchanged) {
        if (this.#disableTouch) return undefined;
        // 0: the key is gone since the read (expired meanwhile, evicted, lost in a failover): written below, but only
        // while it is still gone (a concurrent request that stored a change since keeps it); -1: destroyed.
        const renewed = await runScript(this.#redis, cacheScripts.sessionTouch, [key, `${key}:gone`], [ttl]);
        if (renewed !== 0) return undefined;
      }
      const stored = await runScript(
        this.#redis,
        cacheScripts.sessionSet,
        [key, `${key}:gone`],
        [this.#encode(data), ttl, unchanged ? 1 : 0],
      );
      // The session object now stands for what this save stored: saved again with the data it was first read with
      // (a change undone after a save), it is a change to write, not a renewal.
      if (stored >= 0 && digest !== undefined) rememberDigest(session, digest);
      return undefined;
    });
  }

  /**
   * Renews a session's expiry from its cookie without rewriting its data; an already expired cookie deletes it, as
   * `set` does (nothing at all when `disableTouch`).
   */
  touch(sessionId: string, session: StoredSession, callback: StoreCallback): void {
    this.#run("touch", callback, sessionId, async (key) => {
      // Its lifetime comes from it: without a session, a touch would renew it for the default `ttlMs`.
      this.#dataOf(session);
      const ttl = this.#ttlOf(session);
      if (this.#disableTouch) return undefined;
      if (ttl <= 0) await this.#redis.del(key);
      else await runScript(this.#redis, cacheScripts.sessionTouch, [key, `${key}:gone`], [ttl]);
      return undefined;
    });
  }

  /** Deletes a session and marks its id destroyed for `tombstoneMs`. */
  destroy(sessionId: string, callback: StoreCallback): void {
    this.#run("destroy", callback, sessionId, async (key) => {
      await runScript(this.#redis, cacheScripts.sessionDestroy, [key, `${key}:gone`], [this.#tombstoneMs]);
      return undefined;
    });
  }

  /**
   * Every stored session, each with its `id` (connect-redis' `all`). Walks the prefix with SCAN (needs `+scan`):
   * for operations and small stores, not for request paths.
   */
  all(callback: (err: unknown, sessions?: Array<SessionData & { id: string }>) => void): void {
    this.#runAll("all", callback, async () => {
      const out: Array<SessionData & { id: string }> = [];
      await this.#scan(async (keys) => {
        const texts = await Promise.all(keys.map((k) => this.#redis.get(k)));
        texts.forEach((text, i) => {
          if (text !== null) out.push({ ...this.#decode(text), id: this.#idOf(keys[i] as string) });
        });
      });
      return out;
    });
  }

  /** How many sessions are stored (connect-redis' `length`). Walks the prefix with SCAN (needs `+scan`). */
  length(callback: (err: unknown, length?: number) => void): void {
    this.#runAll("length", callback, async () => {
      let n = 0;
      await this.#scan(async (keys) => {
        n += keys.length;
      });
      return n;
    });
  }

  /**
   * Deletes every stored session (connect-redis' `clear`), e.g. to log everybody out. Walks the prefix with SCAN
   * (needs `+scan`) and destroys each session as `destroy` does, leaving its tombstone, so a request that read one
   * before cannot save it back afterwards; sessions created during the walk may survive it.
   */
  clear(callback: StoreCallback): void {
    this.#runAll("clear", callback, async () => {
      await this.#scan(async (keys) => {
        // Destroyed as destroy() does, one script per key (on a Cluster, keys of one SCAN page live in different
        // slots): a tombstone keeps a request that read the session before from saving it back afterwards.
        await Promise.all(
          keys.map((k) => runScript(this.#redis, cacheScripts.sessionDestroy, [k, `${k}:gone`], [this.#tombstoneMs])),
        );
      });
      return undefined;
    });
  }

  #keyOf(sessionId: string): string {
    return `${this.prefix}:sess:{${validateName(sessionId, "sessionId")}}`;
  }

  #idOf(key: string): string {
    return key.slice(this.prefix.length + 7, -1);
  }

  /**
   * Calls `page` with each SCAN page of session keys (tombstones excluded), on every master of a Cluster. A key SCAN
   * returns again (it may, while Redis resizes its key table) is passed once.
   */
  async #scan(page: (keys: string[]) => Promise<void>): Promise<void> {
    const seen = new Set<string>();
    // The prefix cannot hold glob characters (validatePrefix); ids cannot hold braces, so "}" ends the key.
    const match = `${this.prefix}:sess:{*}`;
    const nodes: Redis[] = isCluster(this.#redis) ? (this.#redis as Cluster).nodes("master") : [this.#redis as Redis];
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, found] = await node.scan(cursor, "MATCH", match, "COUNT", SCAN_COUNT);
        cursor = next;
        const keys = found.filter((k) => !seen.has(k));
        for (const k of keys) seen.add(k);
        if (keys.length > 0) await page(keys);
      } while (cursor !== "0");
    }
  }

  /** The session's own data: its enumerable own properties, without the read digest. */
  #dataOf(session: StoredSession): Record<string, unknown> {
    if (session === null || typeof session !== "object") {
      throw new InvalidArgumentError("session", "expected a session object");
    }
    const data: Record<string, unknown> = { ...(session as Record<string, unknown>) };
    delete data[READ_DIGEST];
    return data;
  }

  #encode(data: object): string {
    let text: unknown;
    try {
      text = this.#serializer.stringify(data);
    } catch (err) {
      throw new InvalidArgumentError("session", `cannot be serialized: ${(err as Error).message}`);
    }
    if (typeof text !== "string") throw new InvalidArgumentError("session", "the serializer returned no string");
    // (JSON.stringify never writes a lone surrogate.)
    if (this.#serializer !== JSON) assertStorableText(text, "session", "the serializer's stringify()");
    return text;
  }

  #decode(text: string): SessionData {
    let data: unknown;
    try {
      data = this.#serializer.parse(text);
    } catch (err) {
      // The serializer's failure (corrupted data, another encryption key), not Redis': said as such, with its cause.
      throw new CoordisError("ERR_SESSION_DECODE", `a stored session could not be decoded: ${errorOf(err).message}`, {
        cause: err,
      });
    }
    if (data === null || typeof data !== "object") {
      throw new CoordisError("ERR_SESSION_DECODE", "a stored session did not decode to an object");
    }
    if (typeof (data as { then?: unknown }).then === "function") {
      // An async parse (a decrypt returning a promise): read as is, the session would be an empty object.
      const reason = "the serializer's parse() returned a promise: it must return the session itself (synchronously)";
      throw new CoordisError("ERR_SESSION_DECODE", `a stored session could not be decoded: ${reason}`);
    }
    return data as SessionData;
  }

  /**
   * Remaining lifetime: the `ttlMs` function, else the cookie's `expires` (when set: not `false`), else
   * `maxAge`/`originalMaxAge`, else `ttlMs`.
   */
  #ttlOf(session: StoredSession): number {
    if (typeof this.#ttlMs === "function") {
      let ttl: unknown;
      try {
        ttl = this.#ttlMs(session as SessionData);
      } catch (err) {
        throw new InvalidArgumentError("options.ttlMs", `the ttl function threw: ${errorOf(err).message}`);
      }
      if (typeof ttl !== "number" || !Number.isFinite(ttl)) {
        throw new InvalidArgumentError(
          "options.ttlMs",
          `the ttl function returned ${validate.describeValue(ttl)}, not a number of ms`,
        );
      }
      return Math.min(Math.ceil(ttl), validate.MAX_DURATION_MS);
    }
    const cookie = session?.cookie;
    // A falsy `expires` (`false`, which older express-session apps store for a browser-session cookie) gives no date,
    // as in connect-redis: read as one it would be 1970, and every save would delete the session.
    if (cookie?.expires) {
      const at = new Date(cookie.expires).getTime();
      if (Number.isFinite(at)) return Math.min(Math.ceil(at - Date.now()), validate.MAX_DURATION_MS);
    }
    const maxAge = cookie?.maxAge ?? cookie?.originalMaxAge;
    if (typeof maxAge === "number" && Number.isFinite(maxAge)) {
      return Math.min(Math.ceil(maxAge), validate.MAX_DURATION_MS);
    }
    return this.#ttlMs;
  }

  #run<T>(
    op: string,
    callback: (err: unknown, value?: T) => void,
    sessionId: string,
    fn: (key: string) => Promise<T>,
  ): void {
    if (typeof callback !== "function") throw new InvalidArgumentError("callback", "expected a function");
    let key: string;
    try {
      key = this.#keyOf(sessionId);
    } catch (err) {
      queueMicrotask(() => callback(err));
      return;
    }
    this.#settle(op, callback, () => fn(key));
  }

  #runAll<T>(op: string, callback: (err: unknown, value?: T) => void, fn: () => Promise<T>): void {
    if (typeof callback !== "function") throw new InvalidArgumentError("callback", "expected a function");
    this.#settle(op, callback, fn);
  }

  #settle<T>(op: string, callback: (err: unknown, value?: T) => void, fn: () => Promise<T>): void {
    const started = performance.now();
    Promise.resolve()
      .then(fn)
      .then(
        (value) => {
          notifyOperation(this.#observer, {
            primitive: "session",
            op,
            outcome: "ok",
            durationMs: performance.now() - started,
          });
          callback(null, value);
        },
        (err: unknown) => {
          const error = err instanceof CoordisError ? err : toCoordisError(err);
          notifyOperation(this.#observer, {
            primitive: "session",
            op,
            outcome: "error",
            durationMs: performance.now() - started,
            error,
          });
          callback(error);
        },
      );
  }
}
