import { runScriptDynamic } from "@coordis/core";
import type { GroupHandle } from "./context.js";
import { eventlogScripts } from "./scripts.generated.js";

/** An entry a consumer holds (queued, running, or awaiting its XACK). */
export interface HeldEntry {
  readonly entry: { readonly id: string };
  /**
   * `performance.now()` when the command that delivered it (read or claim), or its last refresh, was sent: its idle
   * time in Redis is at most the time since.
   */
  fresh: number;
}

/**
 * Keeps the entries a live consumer holds from going idle in Redis: once an entry has been held a third of
 * `claimIdleMs` since its delivery or last refresh (checked every `claimIdleMs / 6`), one script resets the idle time
 * of every such entry (XCLAIM ... JUSTID to the holder itself, which leaves the delivery count alone). An entry no
 * longer pending for this consumer (reclaimed elsewhere after a stall, or acknowledged meanwhile) is no longer held. A
 * failed refresh is reported and tried again at the next check.
 * @internal
 */
export class Refresher {
  readonly #group: GroupHandle;
  readonly #report: (type: string, err: unknown) => void;
  /** An entry held this long since it was fresh is refreshed, ms. */
  readonly #afterMs: number;
  /** How often held entries are checked for a refresh, ms. */
  readonly #everyMs: number;
  /** Entries delivered to this consumer that it still holds: queued, running, or awaiting their XACK. */
  readonly #held = new Set<HeldEntry>();
  #timer: NodeJS.Timeout | undefined;
  /** Refreshes sent and not answered yet. */
  #refreshing = 0;
  #stopped = false;
  readonly #refreshNow = () => {
    this.#timer = undefined;
    this.#refresh();
    this.#schedule();
  };

  constructor(group: GroupHandle, claimIdleMs: number, report: (type: string, err: unknown) => void) {
    this.#group = group;
    this.#report = report;
    // Refreshed at most claimIdleMs / 3 + claimIdleMs / 6 after it was fresh: half of claimIdleMs is left for the
    // refresh to reach Redis.
    this.#afterMs = claimIdleMs / 3;
    this.#everyMs = Math.max(Math.floor(claimIdleMs / 6), 5);
  }

  /** A delivered entry: held until {@link Refresher.release}. */
  hold(entry: HeldEntry): void {
    this.#held.add(entry);
    this.#schedule();
  }

  /** Settled (acknowledged, left pending after a failure, or dead-lettered): no longer refreshed. */
  release(entry: HeldEntry): void {
    this.#held.delete(entry);
  }

  /**
   * Sends the refresh of every entry due now, also when one is on its way. A claim calls it first: sent on the same
   * connection before the claim, it runs first in Redis, so the claim cannot take back an entry this consumer still
   * holds after an event-loop stall longer than `claimIdleMs` (the timer's refresh, due since, would only come after
   * the claim: I/O callbacks run before timers). A refresh on its way does not stand in for it: one sent just before
   * the stall ran in Redis before it, and its reply, read after the stall, has not marked the entries fresh yet.
   */
  refreshDue(): void {
    this.#refresh(true);
  }

  /** Nothing is scheduled any more. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#held.size === 0 || this.#stopped) return;
    this.#timer = setTimeout(this.#refreshNow, this.#everyMs);
  }

  /** Refreshes the entries due; unless `always`, not while a refresh is on its way (a slow Redis gets no pile-up). */
  #refresh(always = false): void {
    if (this.#refreshing > 0 && !always) return;
    const now = performance.now();
    const due: HeldEntry[] = [];
    for (const held of this.#held) if (now - held.fresh >= this.#afterMs) due.push(held);
    if (due.length === 0) return;
    this.#refreshing++;
    const group = this.#group;
    const args: string[] = [group.name, group.consumer];
    for (const held of due) args.push(held.entry.id);
    runScriptDynamic(group.log.redis, eventlogScripts.refresh, [group.log.keys.stream], args)
      .then(
        (refreshed) => {
          const kept = new Set(refreshed);
          for (const held of due) {
            if (kept.has(held.entry.id)) held.fresh = now;
            else this.#held.delete(held);
          }
        },
        (err: unknown) => this.#report("consume-refresh-error", err),
      )
      .finally(() => {
        this.#refreshing--;
      });
  }
}
