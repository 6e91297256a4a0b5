import { Unavailable } from "./types.js";

// Coordis packages are loaded at run time through a non-literal specifier: a package that does not exist yet, or
// does not export what a scenario needs, makes that scenario "not available yet" instead of breaking the build or
// the run. Scenarios describe the API contract of /work/shared/DESIGN.md with the structural types below.

const cache = new Map<string, Promise<Record<string, unknown> | Error>>();

function load(pkg: string): Promise<Record<string, unknown> | Error> {
  let loaded = cache.get(pkg);
  if (loaded === undefined) {
    const specifier: string = `@coordis/${pkg}`;
    loaded = import(specifier).then(
      (mod: Record<string, unknown>) => mod,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
    cache.set(pkg, loaded);
  }
  return loaded;
}

/**
 * The named exports of `@coordis/<pkg>`, each checked to be a function (class or factory).
 * @throws Unavailable naming what is missing: the package cannot be loaded or an export does not exist yet
 */
export async function coordisExports<T extends object>(pkg: string, names: readonly (keyof T & string)[]): Promise<T> {
  const mod = await load(pkg);
  if (mod instanceof Error) throw new Unavailable(`@coordis/${pkg} cannot be loaded: ${mod.message.split("\n")[0]}`);
  const missing = names.filter((n) => typeof mod[n] !== "function");
  if (missing.length > 0) throw new Unavailable(`@coordis/${pkg} does not export ${missing.join(", ")}`);
  return mod as T;
}

/** Throws {@link Unavailable} unless `obj[method]` is a function (a method the scenario calls is not built yet). */
export function requireMethod(obj: unknown, method: string, what: string): void {
  if (typeof (obj as Record<string, unknown> | null)?.[method] !== "function") {
    throw new Unavailable(`${what} has no ${method}() yet`);
  }
}

/** Options every Coordis constructor takes. */
export interface CommonOptions {
  prefix?: string;
}

/** Micro-batching option of consume / submit / append: `true` = the package defaults. */
export interface BatchOption {
  batch?: boolean | { maxSize?: number; maxDelayMs?: number };
}

/** A lease of the lock contract. */
export interface LeaseLike {
  readonly token: string;
  readonly fence: number;
  release(): Promise<boolean>;
}

/** Mutex / Redlock / Semaphore. */
export interface LockLike {
  tryAcquire(): Promise<LeaseLike | null>;
}

/** `@coordis/lock` as the scenarios use it. */
/** `@coordis/core`: the write coalescing the raw floor's corked row borrows. */
export interface CoreModule {
  corkUntilTickEnd(redis: unknown): void;
}

export interface LockModule {
  Mutex: new (redis: unknown, name: string, options?: CommonOptions & { ttlMs?: number }) => LockLike;
  Redlock: new (nodes: unknown[], name: string, options?: CommonOptions & { ttlMs?: number }) => LockLike;
  Semaphore: new (
    redis: unknown,
    name: string,
    options: CommonOptions & { permits: number; ttlMs?: number },
  ) => LockLike;
}

/** A rule of the rate-limit contract. */
export interface RuleLike {
  name?: string;
  limit: number;
  windowMs: number;
  algorithm?: "fixed-window" | "sliding-window" | "token-bucket" | "gcra";
}

/** `@coordis/ratelimit` as the scenarios use it. */
export interface RateLimitModule {
  RateLimiter: new (
    redis: unknown,
    options: CommonOptions & BatchOption & { rules: RuleLike[] },
  ) => { consume(key: string, cost?: number): Promise<{ allowed: boolean }> };
}

/** `@coordis/leaderboard` as the scenarios use it. */
export interface LeaderboardModule {
  Leaderboard: new (
    redis: unknown,
    name: string,
    options?: CommonOptions & BatchOption & { update?: "best" | "replace" | "increment" },
  ) => {
    submit(member: string, score: number): Promise<unknown>;
    rank(member: string): Promise<unknown>;
    top(n: number): Promise<unknown[]>;
    around(member: string, radius: number): Promise<unknown[]>;
  };
}

/** An event-log entry. */
export interface EntryLike {
  readonly id: string;
  readonly data: unknown;
}

/** A running consumer. */
export interface ConsumerLike {
  stop(): Promise<void>;
}

/** `@coordis/eventlog` as the scenarios use it. */
export interface EventLogModule {
  EventLog: new (
    redis: unknown,
    name: string,
    options?: CommonOptions & BatchOption & { chain?: boolean },
  ) => {
    append(event: unknown, options?: { idempotencyKey?: string }): Promise<{ id: string; duplicate: boolean }>;
    group(
      groupName: string,
      options: { consumer: string },
    ): {
      consume(
        handler: (entry: EntryLike) => Promise<void> | void,
        options?: { concurrency?: number; batch?: number; blockMs?: number },
      ): ConsumerLike;
    };
  };
}

/** `@coordis/cache` as the scenarios use it. */
export interface CacheModule {
  Cache: new (
    redis: unknown,
    options: CommonOptions & { namespace: string; l1?: { maxEntries: number } | false; ttlMs: number },
  ) => {
    getOrSet<T>(key: string, loader: () => Promise<T>, options?: { ttlMs?: number }): Promise<T>;
    get(key: string): Promise<unknown>;
    set(key: string, value: unknown, options?: { ttlMs?: number }): Promise<unknown>;
    close?(): Promise<void> | void;
    dispose?(): Promise<void> | void;
  };
}
