import { LRUCache } from "lru-cache";
import type { CacheSettings } from "./options.js";

/** A tag and the version an entry was computed under. */
export type TagPair = readonly [tag: string, version: string];

/** One L1 entry; deadlines are `performance.now()` readings. */
export interface L1Entry {
  readonly data: string;
  readonly fresh: number;
  readonly stale: number;
  /** When L1 stops serving it (at most `l1.ttlMs` after it was stored). */
  readonly until: number;
  readonly tags: readonly TagPair[];
}

/** What L1 still has for a key while Redis is unavailable. */
export interface L1Fallback {
  readonly data: string;
  /** Still fresh (else stale, within its stale window). */
  readonly fresh: boolean;
}

/**
 * What an entry counts against `l1.maxBytes`: the characters of its key, encoded value, tags and their versions, plus
 * 64 for the entry itself and 32 per tag (an entry with many long tags and a tiny value is not nearly free).
 */
function entrySize(e: L1Entry, k: string): number {
  let size = e.data.length + k.length + 64;
  for (const [tag, version] of e.tags) size += tag.length + version.length + 32;
  return size;
}

/**
 * The in-process tier: an LRU of encoded values with their freshness deadlines and tag versions. Every invalidation
 * this instance learns of bumps an epoch; a value read before the bump never enters L1 afterwards, so an
 * invalidation that arrives while a read is in flight always wins. L1 is only read while `readable()` says so (the
 * invalidation subscription is live).
 */
export class L1 {
  readonly #lru: LRUCache<string, L1Entry> | undefined;
  readonly #ttlMs: number;
  readonly #readable: () => boolean;
  /**
   * The keys of the entries carrying each tag: a tag invalidation (heard by every replica) evicts those without
   * walking the whole L1. Kept in step by lru-cache's `dispose`, called on every removal (delete, eviction, a
   * replacement, clear).
   */
  readonly #byTag = new Map<string, Set<string>>();
  #epoch = 0;
  #closed = false;

  constructor(settings: CacheSettings["l1"], readable: () => boolean) {
    this.#readable = readable;
    this.#ttlMs = settings?.ttlMs ?? 0;
    this.#lru =
      settings === undefined
        ? undefined
        : new LRUCache<string, L1Entry>({
            max: settings.maxEntries,
            dispose: (e, k) => this.#unindex(k, e),
            ...(settings.maxBytes === undefined
              ? {}
              : {
                  maxSize: settings.maxBytes,
                  sizeCalculation: entrySize,
                }),
          });
  }

  /** The invalidation epoch: take it before a read, pass it to {@link store}. */
  get epoch(): number {
    return this.#epoch;
  }

  /** `l1.ttlMs` (0 without L1). */
  get ttlMs(): number {
    return this.#ttlMs;
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }

  /** The fresh entry of `k`, when L1 may be read; drops it once past its stale deadline. */
  fresh(k: string): L1Entry | undefined {
    if (this.#lru === undefined || !this.#readable()) return undefined;
    const e = this.#lru.get(k);
    if (e === undefined) return undefined;
    const now = performance.now();
    if (now < e.fresh && now < e.until) return e;
    if (now >= e.stale) this.#lru.delete(k);
    return undefined;
  }

  /**
   * Redis is unavailable: what L1 has for `k` up to its stale deadline, whether the subscription is live or not, but
   * never past the entry's L1 lifetime (`l1.ttlMs`): a subscription cut off without a sign (a silent partition) is
   * not noticed at once, and only that lifetime bounds an invalidation it lost.
   */
  fallback(k: string): L1Fallback | undefined {
    const e = this.#lru?.get(k);
    const now = performance.now();
    return e !== undefined && now < e.until ? { data: e.data, fresh: now < e.fresh } : undefined;
  }

  /** Stores a value read or loaded under `epoch`, unless an invalidation came meanwhile (or L1 was closed). */
  store(k: string, data: string, fresh: number, stale: number, tags: readonly TagPair[], epoch: number): void {
    // An invalidation that arrived while we were reading may concern this very value: then it must not enter L1.
    if (this.#lru === undefined || epoch !== this.#epoch || this.#closed) return;
    const until = Math.min(performance.now() + this.#ttlMs, stale);
    const entry: L1Entry = { data, fresh, stale, until, tags };
    this.#lru.set(k, entry);
    // (An entry larger than maxBytes is not stored.)
    if (tags.length === 0 || this.#lru.peek(k) !== entry) return;
    for (const [tag] of tags) {
      const keys = this.#byTag.get(tag);
      if (keys === undefined) this.#byTag.set(tag, new Set([k]));
      else keys.add(k);
    }
  }

  #unindex(k: string, e: L1Entry): void {
    for (const [tag] of e.tags) {
      const keys = this.#byTag.get(tag);
      if (keys?.delete(k) && keys.size === 0) this.#byTag.delete(tag);
    }
  }

  /** `k` changed: forget it. */
  invalidate(k: string): void {
    this.#epoch++;
    this.#lru?.delete(k);
  }

  /** `t` was invalidated: forget every entry carrying it. */
  evictTag(t: string): void {
    this.#epoch++;
    const keys = this.#byTag.get(t);
    // Copied: each delete removes its key from the set (dispose).
    if (keys !== undefined) for (const k of [...keys]) this.#lru?.delete(k);
  }

  /** Forget everything. */
  drop(): void {
    this.#epoch++;
    this.#lru?.clear();
  }

  /** Invalidations may be missed from now on: no value read before this moment may be stored. */
  bump(): void {
    this.#epoch++;
  }

  close(): void {
    this.#closed = true;
    this.#lru?.clear();
  }
}
