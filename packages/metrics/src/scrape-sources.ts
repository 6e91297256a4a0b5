/** Longest wait for one source at a scrape, ms: a source that answers later keeps its last figures this time. */
export const SOURCE_TIMEOUT_MS = 5_000;

/** One `track` call: its own object, so that an older registration's untrack never removes a newer one. */
interface Registration {
  /** The source; undefined for a name registered without one (nothing read, no figures, no status). */
  readonly source: (() => Promise<unknown>) | undefined;
}

/**
 * Sources read at scrape time (a queue's counts, a consumer group's figures), keyed by what they describe. Every
 * `coordisMetrics()` on one registry shares one instance per kind (the gauges that read them are registered once
 * per registry). Each scrape reads every source once, however many gauges collect it; a source that throws, rejects,
 * answers `null` or takes longer than {@link SOURCE_TIMEOUT_MS} keeps its last figures, and never fails or holds up
 * the scrape beyond that bound. Whether each read gave figures, and when the last one that did ended, are kept
 * alongside (`up`, `readAt`), so that figures kept from an earlier read can be told from fresh ones. Internal.
 */
export class ScrapeSources<T> {
  readonly sources = new Map<string, Registration>();
  /** The figures of each source's last read that gave any. */
  readonly last = new Map<string, T>();
  /** Whether the last read of each source (with a source, read at least once) gave figures. */
  readonly up = new Map<string, boolean>();
  /** When the last read that gave figures ended, Unix ms (absent: none did yet). */
  readonly readAt = new Map<string, number>();
  readonly #snapshot: (answer: object) => T;
  #refreshing: Promise<void> | undefined;

  /**
   * `snapshot` copies what the gauges read out of a source's answer (an object: anything else keeps the last
   * figures, as `null` does). It must not throw: the answer is the user's, and a field that cannot be read is left
   * out, never fails the scrape.
   */
  constructor(snapshot: (answer: object) => T) {
    this.#snapshot = snapshot;
  }

  /**
   * Tracks `source` under `id` (replacing any other registration, its figures and status included); `undefined`
   * registers the id alone. Returns the function that stops tracking this registration.
   */
  track(id: string, source: (() => Promise<unknown>) | undefined): () => void {
    // One object per registration: the same source tracked twice (a queue's workers registering its name in two
    // places: `trackQueue(name)` has no source for either) is two registrations, and an answer read for the first
    // one is not the second one's.
    const registration: Registration = { source };
    this.sources.set(id, registration);
    this.#forget(id);
    return () => {
      // An older registration's untrack must not remove the source that replaced it.
      if (this.sources.get(id) !== registration) return;
      this.sources.delete(id);
      this.#forget(id);
    };
  }

  /** Reads every source once for the scrape under way (gauges collected in one scrape share the read). */
  refresh(): Promise<void> {
    this.#refreshing ??= Promise.all([...this.sources].map(([id, r]) => this.#read(id, r))).then(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  #forget(id: string): void {
    this.last.delete(id);
    this.up.delete(id);
    this.readAt.delete(id);
  }

  async #read(id: string, registration: Registration): Promise<void> {
    const source = registration.source;
    if (source === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), SOURCE_TIMEOUT_MS);
      timer.unref();
    });
    let info: unknown = null;
    try {
      const read = await Promise.race([Promise.resolve().then(() => settle(source)), late]);
      info = read?.answer ?? null;
    } catch {
      // A failed read: keeps the last figures, and says so.
    } finally {
      clearTimeout(timer);
    }
    // A registration replaced or untracked while it was read: its answer is no one's.
    if (this.sources.get(id) !== registration) return;
    const ok = info !== null && typeof info === "object";
    if (ok) {
      this.last.set(id, this.#snapshot(info as object));
      this.readAt.set(id, Date.now());
    }
    this.up.set(id, ok);
  }
}

/**
 * What `source()` answers, settled, wrapped so that no promise ever adopts it. A thenable's `then` is called once,
 * never followed: a thenable that resolves with itself (or with another thenable) would, adopted, queue promise
 * jobs forever and starve the event loop, the timeout's timer and every request of the process included. An answer
 * that is itself a thenable gives no figures (`null`); a `then` that cannot be read or throws is a failed read.
 */
function settle(source: () => unknown): Promise<{ answer: unknown }> {
  return new Promise((resolve, reject) => {
    const answer = source();
    const then = thenOf(answer);
    if (then === undefined) {
      resolve({ answer });
      return;
    }
    then.call(
      answer,
      (value: unknown) => {
        try {
          resolve({ answer: thenOf(value) === undefined ? value : null });
        } catch (err) {
          reject(err);
        }
      },
      reject,
    );
  });
}

/** `value.then` when `value` is a thenable, else undefined (throws what a `then` getter throws). */
function thenOf(value: unknown): ((...args: unknown[]) => unknown) | undefined {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return undefined;
  const then: unknown = (value as { then?: unknown }).then;
  return typeof then === "function" ? (then as (...args: unknown[]) => unknown) : undefined;
}
