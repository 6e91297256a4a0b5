import {
  CoordisError,
  type CoordisObserver,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  notifyOperation,
  type RedisClient,
  runScript,
  toCoordisError,
  validate,
  validateName,
  validatePrefix,
} from "@coordis/core";
import type { Redis } from "ioredis";
import { cacheScripts } from "./scripts.generated.js";

/** Default session lifetime when the cookie carries no expiry, ms (1 day). */
export const DEFAULT_SESSION_TTL_MS = 24 * 60 * 60 * 1000;
/** Default lifetime of a logout tombstone, ms (10 minutes): longer than any request that may still save. */
export const DEFAULT_TOMBSTONE_MS = 10 * 60 * 1000;

/** Options of {@link RedisSessionStore}. */
export interface SessionStoreOptions {
  /** Key prefix; sessions live at `<prefix>:sess:{<sessionId>}`. Default `"coordis"`. */
  prefix?: string;
  /** Lifetime when the session's cookie has neither `expires` nor `maxAge`, ms; default 1 day. */
  ttlMs?: number;
  /**
   * How long a destroyed session id stays destroyed, ms; default 10 minutes. A `set` of that id within this time
   * (a slow request finishing after logout) is refused, so the session cannot come back.
   */
  tombstoneMs?: number;
  /** Receives `session` operations (`get`, `set`, `destroy`, `touch`). */
  observer?: CoordisObserver;
}

/** The minimal shape of a session this store needs: anything JSON-serialisable, with an optional cookie. */
export interface SessionData {
  cookie?: { expires?: Date | string | null; maxAge?: number | null; originalMaxAge?: number | null };
  [key: string]: unknown;
}

/** Node-style callback of the store interface. */
export type StoreCallback = (err?: unknown) => void;
/** Callback of {@link RedisSessionStore.get}: the session, or `null` when there is none. */
export type StoreGetCallback = (err: unknown, session?: SessionData | null) => void;

/**
 * A session store with the `@fastify/session` (and express-session) store interface: `get`/`set`/`destroy`/`touch`
 * in callback style, on ioredis. Each session is one key `<prefix>:sess:{<id>}` expiring with the session's cookie
 * (or after `ttlMs`).
 *
 * - `set` with unchanged data only renews the expiry (nothing is rewritten); `touch` always only renews it.
 * - `destroy` leaves a tombstone for `tombstoneMs`: a request that started before logout and saves its session after
 *   it is refused (its callback gets no error; the session simply stays destroyed).
 * - Every operation is one atomic script or command, and the key carries its id as hash tag (Redis Cluster ready).
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
  private readonly redis: RedisClient;
  private readonly ttlMs: number;
  private readonly tombstoneMs: number;
  private readonly observer: CoordisObserver | undefined;

  /** @throws InvalidArgumentError for an invalid option */
  constructor(redis: RedisClient, options: SessionStoreOptions = {}) {
    const opts = validate.options<SessionStoreOptions>("options", options);
    if (redis === null || typeof redis !== "object" || typeof (redis as Redis).evalsha !== "function") {
      throw new InvalidArgumentError("redis", "expected an ioredis Redis or Cluster client");
    }
    this.redis = redis;
    this.prefix = validatePrefix(opts.prefix ?? DEFAULT_PREFIX, "options.prefix");
    this.ttlMs = opts.ttlMs === undefined ? DEFAULT_SESSION_TTL_MS : validate.durationMs("options.ttlMs", opts.ttlMs);
    this.tombstoneMs =
      opts.tombstoneMs === undefined
        ? DEFAULT_TOMBSTONE_MS
        : validate.durationMs("options.tombstoneMs", opts.tombstoneMs);
    this.observer = opts.observer;
  }

  /** Reads a session. Calls back with `null` when there is none (or it was destroyed). */
  get(sessionId: string, callback: StoreGetCallback): void {
    this.run("get", callback, sessionId, async (key) => {
      const text = await this.redis.get(key);
      return text === null ? null : (JSON.parse(text) as SessionData);
    });
  }

  /**
   * Stores a session for the cookie's remaining lifetime (or `ttlMs`); a cookie already expired deletes it. Refused
   * silently for a destroyed id (see the class description).
   */
  set(sessionId: string, session: SessionData, callback: StoreCallback): void {
    this.run("set", callback, sessionId, async (key) => {
      const data = this.encode(session);
      const ttl = this.ttlOf(session);
      if (ttl <= 0) {
        await this.redis.del(key);
        return undefined;
      }
      await runScript(this.redis, cacheScripts.sessionSet, [key, `${key}:gone`], [data, ttl]);
      return undefined;
    });
  }

  /** Renews a session's expiry from its cookie without rewriting its data. */
  touch(sessionId: string, session: SessionData, callback: StoreCallback): void {
    this.run("touch", callback, sessionId, async (key) => {
      const ttl = this.ttlOf(session);
      if (ttl > 0) await runScript(this.redis, cacheScripts.sessionTouch, [key, `${key}:gone`], [ttl]);
      return undefined;
    });
  }

  /** Deletes a session and marks its id destroyed for `tombstoneMs`. */
  destroy(sessionId: string, callback: StoreCallback): void {
    this.run("destroy", callback, sessionId, async (key) => {
      await runScript(this.redis, cacheScripts.sessionDestroy, [key, `${key}:gone`], [this.tombstoneMs]);
      return undefined;
    });
  }

  private keyOf(sessionId: string): string {
    return `${this.prefix}:sess:{${validateName(sessionId, "sessionId")}}`;
  }

  private encode(session: SessionData): string {
    if (session === null || typeof session !== "object") {
      throw new InvalidArgumentError("session", "expected a session object");
    }
    let text: string | undefined;
    try {
      text = JSON.stringify(session);
    } catch (err) {
      throw new InvalidArgumentError("session", `cannot be encoded as JSON: ${(err as Error).message}`);
    }
    if (text === undefined) throw new InvalidArgumentError("session", "cannot be encoded as JSON");
    return text;
  }

  /** Remaining lifetime from the cookie: `expires`, else `maxAge`/`originalMaxAge`, else the default. */
  private ttlOf(session: SessionData): number {
    const cookie = session?.cookie;
    if (cookie?.expires !== undefined && cookie.expires !== null) {
      const at = new Date(cookie.expires).getTime();
      if (Number.isFinite(at)) return Math.min(Math.ceil(at - Date.now()), validate.MAX_DURATION_MS);
    }
    const maxAge = cookie?.maxAge ?? cookie?.originalMaxAge;
    if (typeof maxAge === "number" && Number.isFinite(maxAge)) {
      return Math.min(Math.ceil(maxAge), validate.MAX_DURATION_MS);
    }
    return this.ttlMs;
  }

  private run<T>(
    op: string,
    callback: (err: unknown, value?: T) => void,
    sessionId: string,
    fn: (key: string) => Promise<T>,
  ): void {
    if (typeof callback !== "function") throw new InvalidArgumentError("callback", "expected a function");
    const started = performance.now();
    let key: string;
    try {
      key = this.keyOf(sessionId);
    } catch (err) {
      queueMicrotask(() => callback(err));
      return;
    }
    fn(key).then(
      (value) => {
        notifyOperation(this.observer, {
          primitive: "session",
          op,
          outcome: "ok",
          durationMs: performance.now() - started,
        });
        callback(null, value);
      },
      (err: unknown) => {
        const error = err instanceof CoordisError ? err : toCoordisError(err);
        notifyOperation(this.observer, {
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
