import { performance } from "node:perf_hooks";
import {
  type CoordisError,
  type Durability,
  DurabilityError,
  entityKeys,
  isClosed,
  type RedisClient,
  RedisUnavailableError,
  randomToken,
  runScript,
  runScriptDurable,
  runScriptSource,
  type ScriptArgs,
  type ScriptDef,
  ScriptError,
  type ScriptKeys,
  toCoordisError,
  undoUntilAnswered,
  validate,
  validateName,
} from "@coordis/core";
import { driftMs, type LeaseBackend } from "./lease.js";
import { type AttemptResult, LockBase } from "./lock-base.js";
import {
  type CommonLockOptions,
  DEFAULT_DRIFT_FACTOR,
  parseCommon,
  parseLockOptions,
  TOKEN_BYTES,
  validateRedlockNodes,
} from "./options.js";
import { lockScripts } from "./scripts.generated.js";

/** Most masters a {@link Redlock} accepts. */
export const MAX_REDLOCK_NODES = 64;
const REDLOCK_KEYS = ["driftFactor", "nodeTimeoutMs"] as const;

/** Options of {@link Redlock}. */
export interface RedlockOptions extends CommonLockOptions {
  /** Clock-drift factor (0 to 0.5): validity is shortened by `ttlMs * driftFactor + 2` ms. Default 0.01. */
  driftFactor?: number;
  /**
   * How long to wait for each master per request, ms; a master that does not answer in time counts as failed.
   * Default `ttlMs / 10`, clamped to 50–500 and to at most half the lease's validity. An acquire round waits this
   * long for a master that does not answer: set beyond the validity, every grant comes back expired while one master
   * is down. Extend and release rounds end soon after a quorum has answered alike (see #all).
   */
  nodeTimeoutMs?: number;
}

/** The error to report for a round: a DurabilityError (the more useful diagnosis) over the first other error. */
function preferDurability(current: CoordisError | undefined, next: CoordisError): CoordisError {
  if (current === undefined) return next;
  return !(current instanceof DurabilityError) && next instanceof DurabilityError ? next : current;
}

type NodeReply<R> = { ok: true; value: R } | { ok: false; error: CoordisError };
/** The replies of a round so far; `undefined`: that master has not answered (yet). */
type Replies<R> = ReadonlyArray<NodeReply<R> | undefined>;

/**
 * A round's replies by kind: `yes` (what `isYes` counts: extended, released), `no` (any other reply: not held),
 * `refused` (a ScriptError: the master answered, and refused — ACL NOPERM, OOM), `silent` (no answer, a timeout, an
 * unconfirmed durable write), with the first refusal and the error to report for the silent ones.
 */
function tally<R>(replies: Replies<R>, isYes: (reply: NodeReply<R> | undefined, i: number) => boolean) {
  let yes = 0;
  let no = 0;
  let refused = 0;
  let silent = 0;
  let refusal: ScriptError | undefined;
  let error: CoordisError | undefined;
  for (let i = 0; i < replies.length; i++) {
    const r = replies[i];
    if (isYes(r, i)) yes++;
    else if (r === undefined) silent++;
    else if (r.ok) no++;
    else if (r.error instanceof ScriptError) {
      refused++;
      refusal ??= r.error;
    } else {
      silent++;
      error = preferDurability(error, r.error);
    }
  }
  return { yes, no, refused, silent, refusal, error };
}

/**
 * Redlock over N independent Redis masters (no replication between them): a lease is held when a quorum
 * `floor(N/2) + 1` of masters granted it within its validity. Requests go to all masters in parallel, each with a
 * per-node timeout; a failed attempt releases every master before a random retry delay (a master that does not answer
 * that release is sent it again until it does, for up to `ttlMs`). A master that refuses (a ScriptError: ACL NOPERM,
 * OOM) has answered: when refusals leave no possible quorum, acquire rejects with that error at once. Scripts go out
 * through `runScript`, which corks each master's socket for the tick: what all Redlocks of this process send to one
 * master in one tick leaves in one system call, each command keeping its own reply and error.
 *
 * Fencing: each master keeps its own fence counter, and counters diverge (a master misses acquisitions while it is
 * down or slow). After winning a quorum the holder picks `F = max` of the counters it got, then raises the counter
 * to `F` on winning masters that are behind (a second parallel round, skipped when a quorum already returned `F`),
 * only while its token still holds each of them. The lease is handed out only when a quorum holds a counter ≥ F
 * under its token. Any later holder's quorum intersects that quorum, and its INCR on the shared master happens after
 * this holder's lock there is gone, so it gets a fence > F. Limits: this holds while a majority of masters keeps its
 * data (a master restarted without persistence rejoins with counter 0 — harmless while the others remember; a
 * majority losing data at once can let fences go back).
 *
 * Extension: a lease is extended when a quorum confirms it (the round ends soon after, not waiting for a silent
 * master), and lost (`LeaseLostError`, reason `"not-held"`) only when enough masters answer that its token is gone
 * that no quorum can still hold it. A master that errs or does not answer within `nodeTimeoutMs` (down, slow, paused)
 * may still hold the token: without a quorum of definitive answers `extend()` throws `RedisUnavailableError` (the
 * ScriptError when refusals decided it), the local deadline stays where it was (earlier for a shorter `ttlMs`, which
 * some masters may have applied), and auto-extension retries sooner
 * until that deadline passes — as a Mutex does when its one Redis is unreachable. Release follows the same rule: true
 * when a quorum released the token, false only when no quorum can have held it, RedisUnavailableError otherwise (the
 * lease can be released again; masters an earlier call of that lease released count as released).
 *
 * Keys on each master are those of {@link Mutex}: `<prefix>:lock:{<name>}` and `...:fence`.
 */
export class Redlock extends LockBase {
  /** How many masters must grant a lease: `floor(N/2) + 1`. */
  readonly quorum: number;
  readonly #nodes: readonly RedisClient[];
  readonly #nodeTimeoutMs: number;
  readonly #lockKey: string;
  readonly #fenceKey: string;
  readonly #backend: LeaseBackend;
  readonly #durability: Durability | undefined;

  /**
   * @param nodes 1–64 ioredis clients, each connected to a different independent master
   * @param name the lock's name: 1–512 UTF-8 bytes, no `{` or `}`
   * @param options `ttlMs` (default 30 000), `driftFactor` (default 0.01), `nodeTimeoutMs`, `prefix`, `observer`,
   *   `durability` (applied on each master: a master's grant counts only once confirmed)
   * @throws InvalidArgumentError for a bad argument (no Redis call is made)
   */
  constructor(nodes: readonly RedisClient[], name: string, options: RedlockOptions = {}) {
    validateRedlockNodes(nodes, MAX_REDLOCK_NODES);
    validateName(name, "name");
    const raw = parseLockOptions<RedlockOptions>(options, REDLOCK_KEYS);
    const common = parseCommon(raw, nodes);
    const driftFactor =
      raw.driftFactor === undefined
        ? DEFAULT_DRIFT_FACTOR
        : validate.finiteNumber("options.driftFactor", raw.driftFactor, { min: 0, max: 0.5 });
    // The default waits for a silent master at most half the lease's validity: a round that waited longer would
    // bring back only expired grants while one master is down, and a short lease could never be acquired.
    const nodeTimeoutMs =
      raw.nodeTimeoutMs === undefined
        ? Math.max(
            1,
            Math.min(
              500,
              Math.max(50, Math.floor(common.ttlMs / 10)),
              Math.floor((common.ttlMs - driftMs(common.ttlMs, driftFactor)) / 2),
            ),
          )
        : validate.durationMs("options.nodeTimeoutMs", raw.nodeTimeoutMs, { min: 1, max: 60_000 });
    super("redlock", name, common.ttlMs, driftFactor, common.observer, common.durability?.timeoutMs);
    const keys = entityKeys(common.prefix, "lock", name);
    this.#nodes = [...nodes];
    this.quorum = Math.floor(nodes.length / 2) + 1;
    this.#nodeTimeoutMs = nodeTimeoutMs;
    this.#lockKey = keys.base;
    this.#fenceKey = keys.sub("fence");
    this.#durability = common.durability;
    const n = nodes.length;
    const quorum = this.quorum;
    /** A round is decided once a quorum said yes, or so many said no or refused that no quorum can say yes. */
    const decided = (t: ReturnType<typeof tally>) => t.yes >= quorum || t.no > n - quorum || t.refused > n - quorum;
    /** The error of a round that is not decided: the refusal, when it decided that (or nobody else stayed silent). */
    const undecided = (what: string, t: ReturnType<typeof tally>, yes: string): CoordisError => {
      if (t.refusal !== undefined && (t.refused > n - quorum || t.silent === 0)) return t.refusal;
      if (t.error instanceof DurabilityError) return t.error;
      return new RedisUnavailableError(
        `Redlock "${this.name}": ${what} not confirmed (${t.yes} ${yes}, ${t.no} not held, ` +
          (t.refused > 0 ? `${t.refused} refused, ` : "") +
          `${t.silent} of ${n} masters did not answer; a quorum of ${quorum} is needed): ` +
          (t.error?.message ?? t.refusal?.message ?? "no reply"),
        { cause: t.error ?? t.refusal },
      );
    };
    const extended = (r: NodeReply<number> | undefined) => r?.ok === true && r.value === 1;
    this.#backend = {
      extend: async (token, ttlMs) => {
        // Settles soon after it is decided (see #all): a master still silent then (down, paused) holds up no extension; its late
        // answer, if any, only extends that master too.
        const replies = await this.#all(
          (node) => this.#run(node, lockScripts.extend, [this.#lockKey], [token, ttlMs]),
          this.#nodes,
          (so) => decided(tally(so, extended)),
        );
        const t = tally(replies, extended);
        if (t.yes >= quorum) return true;
        // Lost only on definitive answers: enough masters replied "token not there" that no quorum can still hold
        // it. A master that failed, refused or timed out may still hold the token (a slow or paused master): unknown.
        if (t.no > n - quorum) return false;
        throw undecided("extension", t, "extended");
      },
      release: async (token, progress) => {
        // The masters this lease has released, kept across its release calls: an earlier, unconfirmed call's
        // master (one that answered, or answered too late) now answers "not held" because of it.
        const done = progress?.releasedNodes ?? new Set<number>();
        if (progress !== undefined) progress.releasedNodes = done;
        const released = (_: unknown, i: number) => done.has(i);
        const replies = await this.#all(
          (node, i) =>
            runScript(node, lockScripts.release, [this.#lockKey], [token]).then((held) => {
              if (held === 1) done.add(i);
              return held;
            }),
          this.#nodes,
          (so) => decided(tally(so, released)),
        );
        const t = tally(replies, released);
        if (t.yes >= quorum) return true;
        // Lost only on definitive answers, as for extend: no quorum can have held the token.
        if (t.no > n - quorum) return false;
        // A master that did not answer may still hold the token: unknown. The lease can be released again.
        throw undecided("release", t, "released");
      },
    };
  }

  /** Number of masters. */
  get size(): number {
    return this.#nodes.length;
  }

  protected override lateGrantMessage(): string {
    const waitMs = this.#nodeTimeoutMs + (this.#durability?.timeoutMs ?? 0);
    return (
      `Redlock "${this.name}": the last grant came back after its validity (ttlMs ${this.ttlMs} ms less ` +
      `${driftMs(this.ttlMs, this.driftFactor)} ms for clock drift) and was given back, not handed out: a master ` +
      `that does not answer keeps each round waiting nodeTimeoutMs (${this.#nodeTimeoutMs} ms)` +
      (waitMs === this.#nodeTimeoutMs ? "" : ` plus durability.timeoutMs (${waitMs - this.#nodeTimeoutMs} ms)`) +
      ". Keep nodeTimeoutMs well below ttlMs, or raise ttlMs."
    );
  }

  protected async attempt(): Promise<AttemptResult> {
    const n = this.#nodes.length;
    // Clients the application closed (quit, disconnect) never answer again: no retrying until waitMs.
    const closed = this.#nodes.filter(isClosed).length;
    if (closed > n - this.quorum) {
      throw new RedisUnavailableError(
        `Redlock "${this.name}": the clients of ${closed} of ${n} masters are closed (quit or disconnect), so no ` +
          `quorum of ${this.quorum} can answer; use open clients`,
      );
    }
    const token = randomToken(TOKEN_BYTES);
    const start = performance.now();
    const calls: Promise<unknown>[] = [];
    // The round waits for every master (up to nodeTimeoutMs), unless refusals already leave no possible quorum.
    const replies = await this.#all(
      (node, i) =>
        (calls[i] = this.#run(node, lockScripts.acquire, [this.#lockKey, this.#fenceKey], [token, this.ttlMs])),
      this.#nodes,
      (so) => tally(so, () => false).refused > n - this.quorum,
    );
    // `aof: true` on a master without WAITAOF (Redis < 7.2): refused there before anything was sent, and on every
    // retry alike, so it counts as that master's refusal; on all of them, the acquire fails at once, nothing sent.
    const unsupported = (r: NodeReply<unknown>) =>
      !r.ok && r.error instanceof DurabilityError && r.error.reason === "unsupported";
    if (replies.every(unsupported)) throw (replies[0] as { error: CoordisError }).error;
    const won: Array<{ node: RedisClient; fence: number }> = [];
    /** The remaining TTLs of the masters held by someone else (0 ms: ends within this ms; no expiry: unknown). */
    const busyTtls: number[] = [];
    let refused = 0;
    let refusal: CoordisError | undefined;
    let firstError: CoordisError | undefined;
    const unanswered = new Map<number, Promise<unknown>>();
    replies.forEach((r, i) => {
      if (!r.ok && (r.error instanceof ScriptError || unsupported(r))) {
        // A refusal (ACL NOPERM, OOM) is an answer: this master will not grant, now or on a retry.
        refused++;
        refusal ??= r.error;
      } else if (!r.ok) {
        firstError = preferDurability(firstError, r.error);
        unanswered.set(i, calls[i] as Promise<unknown>);
      } else if (r.value[0] === 1) won.push({ node: this.#nodes[i] as RedisClient, fence: r.value[1] });
      else busyTtls.push(r.value[2] >= 0 ? Math.max(1, r.value[2]) : Number.POSITIVE_INFINITY);
    });
    const busy = busyTtls.length;
    if (won.length < this.quorum) {
      // Release every master, not only those we know we won: one that timed out may still have granted it, and a
      // script refused halfway (OOM at its INCR) may have left its SET.
      if (won.length > 0 || unanswered.size > 0 || refused > 0) await this.#releaseAll(token, unanswered);
      // Refusals that leave no possible quorum end the acquire at once: retrying would be refused again.
      if (refusal !== undefined && refused > n - this.quorum) throw refusal;
      if (won.length + busy < this.quorum) {
        const answered = won.length + busy;
        if (firstError instanceof DurabilityError) return { kind: "unavailable", error: firstError };
        return {
          kind: "unavailable",
          error: new RedisUnavailableError(
            `Redlock "${this.name}": only ${answered} of ${n} masters answered` +
              (refused > 0 ? `, ${refused} refused` : "") +
              ` (a quorum of ${this.quorum} is needed): ${firstError?.message ?? refusal?.message ?? "no reply"}`,
            { cause: firstError ?? refusal },
          ),
        };
      }
      // Come back once enough busy masters have expired to complete a quorum with those this round reached.
      const freeAfter = busyTtls.sort((a, b) => a - b)[this.quorum - won.length - 1] ?? 0;
      return { kind: "busy", retryAfterMs: Number.isFinite(freeAfter) ? freeAfter : 0 };
    }
    const fence = Math.max(...won.map((w) => w.fence));
    const atFence = won.filter((w) => w.fence === fence).length;
    if (atFence < this.quorum) {
      // Fence sync: raise the masters that are behind to F while we still hold them.
      const behind = won.filter((w) => w.fence < fence).map((w) => w.node);
      const raised = await this.#all(
        (node) => this.#run(node, lockScripts.fenceRaise, [this.#lockKey, this.#fenceKey], [token, fence]),
        behind,
      );
      if (atFence + raised.filter((r) => r.ok && r.value === 1).length < this.quorum) {
        await this.#releaseAll(token, unanswered);
        // Not a grant come too late unless the token was gone: the refusal (at once, as for acquire) or the error.
        const t = tally(raised, () => false);
        if (t.refusal !== undefined && atFence + behind.length - t.refused < this.quorum) throw t.refusal;
        return t.error === undefined ? { kind: "invalid" } : { kind: "unavailable", error: t.error };
      }
    }
    // Won after its validity, it is given back as a lost round's grants are: sent again to a master that does not
    // answer, and behind the acquire on a master that did not answer it.
    return this.settle(token, fence, start, this.#backend, () => this.#releaseAll(token, unanswered));
  }

  /**
   * One script on one master; with durability, a write the master's replicas did not confirm fails that master's
   * reply with the DurabilityError (its grant, extension or raise does not count). A reply that wrote nothing stands.
   */
  #run<K extends readonly string[], A extends readonly string[], R>(
    node: RedisClient,
    script: ScriptDef<K, A, R>,
    keys: ScriptKeys<K>,
    args: ScriptArgs<A>,
  ): Promise<R> {
    // Without durability the script's own promise, not an async wrapper's (one promise and tick fewer per master).
    if (this.#durability === undefined) return runScript(node, script, keys, args);
    return runScriptDurable(node, script, keys, args, this.#durability).then(({ reply, error }) => {
      // A script that wrote nothing (acquire: busy; extend, fence raise: not held) has nothing to confirm: its answer
      // stands, as a Mutex's does (a lock held elsewhere is busy, not a DurabilityError).
      const wroteNothing = reply === 0 || (Array.isArray(reply) && reply[0] === 0);
      if (error !== undefined && !wroteNothing) throw error;
      return reply;
    });
  }

  /**
   * Releases `token` on every master. A master whose acquire this round gave up on (`unanswered`: its call) may run
   * that acquire late, also as the EVAL retry of a NOSCRIPT answered after the round's timeout: its release is sent
   * once that call has settled, so it follows everything the call sent, and as EVAL with the script's source
   * (`runScriptSource`), which runs whether or not the master has cached it. Each release is sent again while its
   * master does not answer (see #giveBack); the round itself waits for the first ones only.
   */
  #releaseAll(token: string, unanswered: ReadonlyMap<number, Promise<unknown>>): Promise<NodeReply<number>[]> {
    return this.#all((node, i) => this.#giveBack(node, token, unanswered.get(i)));
  }

  /**
   * One master's release of a grant nobody holds: a compare-and-delete (safe to repeat), sent behind `after` when
   * given, then sent again as EVAL of the source while the master does not answer it, as a Mutex's undo is
   * (`undoUntilAnswered`: a silent connection, or a client reconnecting whose offline queue drops a command that times
   * out, would lose a single one), for up to `ttlMs`: the grant has expired by then. Settles as the first one does.
   */
  #giveBack(node: RedisClient, token: string, after: Promise<unknown> | undefined): Promise<number> {
    const again = () => runScriptSource(node, lockScripts.release, [this.#lockKey], [token]);
    const send = (cached: boolean): Promise<number> => {
      const first = cached ? runScript(node, lockScripts.release, [this.#lockKey], [token]) : again();
      undoUntilAnswered(node, again, this.ttlMs, first);
      return first;
    };
    if (after === undefined) return send(true);
    return after.then(
      () => send(false),
      () => send(false),
    );
  }

  /**
   * Runs `call` on every node in parallel; a node that fails or exceeds the per-node timeout yields an error. The
   * calls start together, so one timer serves the whole round. The timer measures the masters, not this process: it
   * starts once the calls were written (they leave together at the end of this tick, see corkUntilTickEnd), and when
   * it fires, the answers already received are read first (setImmediate runs after the event loop's I/O phase), so a
   * client whose own event loop was blocked meanwhile does not take healthy masters for silent ones. (The validity
   * check over the whole round still counts every ms from the start.) With `decided`, the round ends soon after the
   * replies so far decide it (the masters still out get about as long again as the round took): those still out then
   * count as not answered, and their late replies are read and dropped (never unhandled).
   */
  #all<R>(
    call: (node: RedisClient, i: number) => Promise<R>,
    nodes = this.#nodes,
    decided?: (replies: Replies<R>) => boolean,
  ): Promise<NodeReply<R>[]> {
    const n = nodes.length;
    if (n === 0) return Promise.resolve([]);
    // A durable write waits up to durability.timeoutMs on the master before it answers.
    const timeoutMs = this.#nodeTimeoutMs + (this.#durability?.timeoutMs ?? 0);
    const started = performance.now();
    return new Promise((resolve) => {
      const replies: Array<NodeReply<R> | undefined> = new Array(n);
      let left = n;
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let grace: NodeJS.Timeout | undefined;
      const finish = (why: string) => {
        done = true;
        clearTimeout(timer);
        clearTimeout(grace);
        for (let i = 0; i < n; i++) replies[i] ??= { ok: false, error: new RedisUnavailableError(why) };
        resolve(replies as NodeReply<R>[]);
      };
      process.nextTick(() => {
        if (!done) {
          timer = setTimeout(
            () => setImmediate(() => done || finish(`a Redlock master did not answer within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }
      });
      const settle = (i: number, reply: NodeReply<R>) => {
        if (done) return;
        replies[i] = reply;
        if (--left === 0) finish("");
        else if (grace === undefined && decided?.(replies)) {
          // Decided: the masters still out get as long again as the round took so far (at least 5 ms), so masters
          // that answer are all counted (a release leaves none of them holding the token), while a silent one holds
          // the round up for about one round trip, not nodeTimeoutMs.
          const wait = Math.max(5, 2 * (performance.now() - started));
          grace = setTimeout(() => finish("a Redlock master had not answered when the round was decided"), wait);
        }
      };
      for (let i = 0; i < n; i++) {
        let pending: Promise<R>;
        try {
          pending = call(nodes[i] as RedisClient, i);
        } catch (err) {
          pending = Promise.reject(err);
        }
        pending.then(
          (value) => settle(i, { ok: true, value }),
          (err: unknown) => settle(i, { ok: false, error: toCoordisError(err) }),
        );
      }
    });
  }
}
