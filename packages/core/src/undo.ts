import { performance } from "node:perf_hooks";
import { isClosed, type RedisClient } from "./client.js";
import { RedisUnavailableError, toCoordisError } from "./errors.js";
import type { OperationSite } from "./instrument.js";
import { type CoordisObserver, notifyEvent } from "./observer.js";

/** First pause before an undo is sent again, ms; it doubles up to {@link UNDO_MAX_DELAY_MS}. */
const UNDO_FIRST_DELAY_MS = 50;
const UNDO_MAX_DELAY_MS = 1_000;

/**
 * Most undos waiting for Redis per client. Beyond it the oldest is dropped (what it undoes expires at its TTL, as it
 * would without an undo) and the caller's observer hears of it once per outage (an `"undo-dropped"` event).
 * @internal
 */
export const MAX_PENDING_UNDOS = 10_000;

/** Undos sent together once Redis answers again: the next batch leaves when this one is answered. */
const FLUSH_BATCH = 100;

/** Who hears of an undo dropped because too many waited: the caller's observer, the event named after its site. */
export interface UndoReport {
  readonly observer: CoordisObserver | undefined;
  readonly site: OperationSite;
}

/** One undo waiting for Redis to answer. */
interface PendingUndo {
  readonly undo: () => Promise<unknown>;
  /** `performance.now()` after which what it undoes has expired: it is dropped, never sent. */
  readonly until: number;
  readonly report: UndoReport | undefined;
}

/** The undos of one client waiting for Redis, and the one loop that sends them. */
interface UndoQueue {
  /** Oldest first (a Set keeps insertion order; deleting and adding again moves one to the end). */
  pending: Set<PendingUndo>;
  /** Pause before the next attempt, ms (doubling while Redis does not answer). */
  delay: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** An attempt (one probe, or a batch once Redis answered one) is out: nothing else is sent meanwhile. */
  sending: boolean;
  /** Observers told this outage that undos were dropped. */
  readonly reported: Set<CoordisObserver>;
  /** Listener of the client's `end`: drops everything. */
  readonly onEnd: () => void;
}

const queues = new WeakMap<RedisClient, UndoQueue>();

/** Whether `err` says Redis gave no answer (as opposed to a refusal, which is an answer). */
function unanswered(err: unknown): boolean {
  return toCoordisError(err) instanceof RedisUnavailableError;
}

/** Calls `undo`, a synchronous throw turned into a rejection. */
function send(undo: () => Promise<unknown>): Promise<unknown> {
  try {
    return Promise.resolve(undo());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Resolves with true when Redis answered `attempt` (a refusal included), false when it did not. */
function answered(attempt: Promise<unknown>): Promise<boolean> {
  return attempt.then(
    () => true,
    (err: unknown) => !unanswered(err),
  );
}

function queueOf(redis: RedisClient): UndoQueue {
  let q = queues.get(redis);
  if (q === undefined) {
    const onEnd = () => drop(redis);
    q = {
      pending: new Set(),
      delay: UNDO_FIRST_DELAY_MS,
      timer: undefined,
      sending: false,
      reported: new Set(),
      onEnd,
    };
    queues.set(redis, q);
    (redis as { once?: (event: string, listener: () => void) => unknown }).once?.("end", onEnd);
  }
  return q;
}

/** Forgets `redis`' queue: nothing pending, no timer, no listener (a new outage starts a new one). */
function drop(redis: RedisClient): void {
  const q = queues.get(redis);
  if (q === undefined) return;
  queues.delete(redis);
  if (q.timer !== undefined) clearTimeout(q.timer);
  q.timer = undefined;
  q.pending.clear();
  (redis as { off?: (event: string, listener: () => void) => unknown }).off?.("end", q.onEnd);
}

/** Whether `q` is still `redis`' queue (not dropped at a close or once it emptied, while an attempt was out). */
function current(redis: RedisClient, q: UndoQueue): boolean {
  return queues.get(redis) === q && !isClosed(redis);
}

/** Adds `entry` at the end of `redis`' queue, dropping the oldest beyond {@link MAX_PENDING_UNDOS}. */
function enqueue(redis: RedisClient, entry: PendingUndo): void {
  if (isClosed(redis) || entry.until <= performance.now()) return;
  const q = queueOf(redis);
  q.pending.add(entry);
  trim(q);
  schedule(redis, q);
}

function trim(q: UndoQueue): void {
  while (q.pending.size > MAX_PENDING_UNDOS) {
    const oldest = q.pending.values().next().value as PendingUndo;
    q.pending.delete(oldest);
    const observer = oldest.report?.observer;
    if (observer === undefined || q.reported.has(observer)) continue;
    q.reported.add(observer);
    const site = (oldest.report as UndoReport).site;
    notifyEvent(observer, {
      primitive: site.primitive,
      type: "undo-dropped",
      ...(site.name === undefined ? {} : { name: site.name }),
      attributes: { ...site.attributes, limit: MAX_PENDING_UNDOS },
      error: new RedisUnavailableError(
        `Redis has not answered for a while and more than ${MAX_PENDING_UNDOS} undos of unanswered calls wait on ` +
          "this client: the oldest are dropped, and what they undo (a lock grant, a permit, a tick claim) stays " +
          "taken until its TTL. Check that the server is reachable; this is reported once per outage.",
      ),
    });
  }
}

/** Drops the undos whose time has passed, and forgets the queue when nothing is left. Returns whether any is left. */
function prune(redis: RedisClient, q: UndoQueue): boolean {
  const now = performance.now();
  for (const entry of q.pending) if (entry.until <= now) q.pending.delete(entry);
  if (q.pending.size > 0) return true;
  drop(redis);
  return false;
}

function schedule(redis: RedisClient, q: UndoQueue): void {
  if (q.timer !== undefined || q.sending) return;
  q.timer = setTimeout(() => {
    q.timer = undefined;
    probe(redis, q);
  }, q.delay);
  q.timer.unref();
}

/**
 * Sends the oldest undo alone. Answered: the others follow ({@link flush}). Not answered: it moves to the end (the
 * next probe is another undo: on a Cluster, one whose node is up can get through) and the pause doubles.
 */
function probe(redis: RedisClient, q: UndoQueue): void {
  if (!current(redis, q)) {
    drop(redis);
    return;
  }
  if (!prune(redis, q)) return;
  const entry = q.pending.values().next().value as PendingUndo;
  q.sending = true;
  void answered(send(entry.undo)).then((ok) => {
    q.sending = false;
    if (!current(redis, q)) {
      if (queues.get(redis) === q) drop(redis);
      return;
    }
    if (ok) {
      q.pending.delete(entry);
      q.delay = UNDO_FIRST_DELAY_MS;
      flush(redis, q);
      return;
    }
    if (q.pending.delete(entry)) q.pending.add(entry);
    q.delay = Math.min(q.delay * 2, UNDO_MAX_DELAY_MS);
    if (prune(redis, q)) schedule(redis, q);
  });
}

/**
 * Redis answered: sends every undo still waiting once, oldest first, {@link FLUSH_BATCH} at a time (the next batch
 * once this one is answered), each taken out of the queue as it is sent. Those the batch's attempt gets no answer
 * for go back to the front of the queue and the probing starts again.
 */
function flush(redis: RedisClient, q: UndoQueue): void {
  if (!current(redis, q)) {
    drop(redis);
    return;
  }
  if (!prune(redis, q)) return;
  const batch: PendingUndo[] = [];
  for (const entry of q.pending) {
    batch.push(entry);
    q.pending.delete(entry);
    if (batch.length === FLUSH_BATCH) break;
  }
  q.sending = true;
  void Promise.all(batch.map((entry) => answered(send(entry.undo)))).then((oks) => {
    q.sending = false;
    if (!current(redis, q)) {
      if (queues.get(redis) === q) drop(redis);
      return;
    }
    const again = batch.filter((_, i) => oks[i] !== true);
    if (again.length === 0) {
      flush(redis, q);
      return;
    }
    q.pending = new Set([...again, ...q.pending]);
    trim(q);
    q.delay = UNDO_FIRST_DELAY_MS * 2;
    if (prune(redis, q)) schedule(redis, q);
  });
}

/**
 * Sends `undo` (a compare-and-delete of a token, safe to repeat) until Redis answers it, for at most `forMs` (after
 * that what it undoes has expired by itself), in the background. An outage longer than the command timeout made a
 * single attempt fail too (a silent connection, or a client reconnecting: a command that times out in its offline
 * queue never runs), and the grant or claim it undoes then held for nobody. A refusal is an answer.
 *
 * `first`: an attempt the caller has sent already (it is not sent again); without it `undo` is sent at once, right
 * behind the call it undoes. An attempt left without an answer joins the client's queue of undos waiting for Redis
 * (one per client): one attempt at a time, the oldest undo first, after 50 ms doubling up to 1 s; once one is answered
 * every undo waiting is sent once, a batch at a time, and forgotten. So an outage costs one command per pause
 * whatever the number of calls that failed in it, and its end one undo per call still live, not one per call and
 * per second. At most {@link MAX_PENDING_UNDOS} wait per client (the oldest is dropped beyond it, and `report`'s
 * observer, when given, told once per outage); an undo whose `forMs` has passed is dropped unsent; everything is
 * dropped when the client is closed. Used by the locks (a grant or a tick claim nobody holds) and the concurrency
 * limiter (a permit whose acquire went unanswered).
 * @internal
 */
export function undoUntilAnswered(
  redis: RedisClient,
  undo: () => Promise<unknown>,
  forMs: number,
  first?: Promise<unknown>,
  report?: UndoReport,
): void {
  const until = performance.now() + forMs;
  (first ?? send(undo)).catch((err: unknown) => {
    if (unanswered(err)) enqueue(redis, { undo, until, report });
  });
}

/**
 * What waits in `redis`' undo queue (`undefined` when nothing does): the undos pending, whether a new attempt is
 * scheduled, whether one is out. For tests.
 * @internal
 */
export function undoQueueState(
  redis: RedisClient,
): { readonly pending: number; readonly scheduled: boolean; readonly sending: boolean } | undefined {
  const q = queues.get(redis);
  if (q === undefined) return undefined;
  return { pending: q.pending.size, scheduled: q.timer !== undefined, sending: q.sending };
}
