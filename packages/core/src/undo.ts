import type { RedisClient } from "./client.js";
import { RedisUnavailableError, toCoordisError } from "./errors.js";

/** First pause before an undo is sent again, ms; it doubles up to {@link UNDO_MAX_DELAY_MS}. */
const UNDO_FIRST_DELAY_MS = 50;
const UNDO_MAX_DELAY_MS = 1_000;

/**
 * Sends `undo` (a compare-and-delete of a token, safe to repeat) until Redis answers it, for at most `forMs` (after
 * that what it undoes has expired by itself), in the background. An outage longer than the command timeout made a
 * single attempt fail too (a silent connection, or a client reconnecting: a command that times out in its offline
 * queue never runs), and the grant or claim it undoes then held for nobody. It stops at the first answer (a refusal
 * is one), and when the client was closed. `first`: an attempt the caller has sent already (it is not sent again).
 * Used by the locks (a grant or a tick claim nobody holds) and the concurrency limiter (a permit whose acquire went
 * unanswered).
 * @internal
 */
export function undoUntilAnswered(
  redis: RedisClient,
  undo: () => Promise<unknown>,
  forMs: number,
  first?: Promise<unknown>,
): void {
  const until = performance.now() + forMs;
  let delay = UNDO_FIRST_DELAY_MS;
  const attempt = (sent: Promise<unknown>): void => {
    sent.catch((err: unknown) => {
      const closed = (redis as { status?: string }).status === "end";
      if (closed || !(toCoordisError(err) instanceof RedisUnavailableError)) return;
      const wait = Math.min(delay, until - performance.now());
      if (wait <= 0) return;
      delay = Math.min(delay * 2, UNDO_MAX_DELAY_MS);
      setTimeout(() => attempt(undo()), wait).unref();
    });
  };
  attempt(first ?? undo());
}
