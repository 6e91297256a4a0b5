/** Longest wait for one source at a scrape, ms: a source that answers later keeps its last figures this time. */
export const SOURCE_TIMEOUT_MS = 5_000;

/**
 * Sources read at scrape time (a queue's counts, a consumer group's figures), keyed by what they describe. Every
 * `coordisMetrics()` on one registry shares one instance per kind (the gauges that read them are registered once
 * per registry). Each scrape reads every source once, however many gauges collect it; a source that throws, rejects,
 * answers `null` or takes longer than {@link SOURCE_TIMEOUT_MS} keeps its last figures, and never fails or holds up
 * the scrape beyond that bound. Internal.
 */
export class ScrapeSources<T> {
  readonly sources = new Map<string, () => Promise<unknown>>();
  readonly last = new Map<string, T>();
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

  /** Tracks `source` under `id` (replacing any other); returns the function that stops tracking this source. */
  track(id: string, source: () => Promise<unknown>): () => void {
    this.sources.set(id, source);
    this.last.delete(id);
    return () => {
      // An older registration's untrack must not remove the source that replaced it.
      if (this.sources.get(id) !== source) return;
      this.sources.delete(id);
      this.last.delete(id);
    };
  }

  /** Reads every source once for the scrape under way (gauges collected in one scrape share the read). */
  refresh(): Promise<void> {
    this.#refreshing ??= Promise.all([...this.sources].map(([id, source]) => this.#read(id, source))).then(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #read(id: string, source: () => Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), SOURCE_TIMEOUT_MS);
      timer.unref();
    });
    try {
      const info = await Promise.race([Promise.resolve().then(source), late]);
      if (info !== null && typeof info === "object" && this.sources.get(id) === source) {
        this.last.set(id, this.#snapshot(info));
      }
    } catch {
      // Keeps the last figures.
    } finally {
      clearTimeout(timer);
    }
  }
}
