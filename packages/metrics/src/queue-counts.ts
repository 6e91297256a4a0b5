/**
 * A queue's job counts by state, as `Queue.counts()` of `@coordis/queue` returns them (summed over partitions).
 * Declared here by shape, so this package does not depend on the queue package.
 */
export interface QueueCountsInfo {
  /** Ready to run, not yet delivered to a worker. */
  readonly waiting: number;
  /** Delayed, waiting for a retry's backoff or a group's rate limit. */
  readonly delayed: number;
  /** Running. */
  readonly active: number;
  /** Completed and still retained. */
  readonly completed: number;
  /** Dead letters retained. */
  readonly dead: number;
  /** Cancelled and still retained. */
  readonly cancelled: number;
  /** Whether the queue is paused. */
  readonly paused: boolean;
}

/** A source of a queue's counts, read at each scrape, e.g. `() => queue.counts()`. */
export type QueueCountsSource = () => Promise<QueueCountsInfo | null>;
