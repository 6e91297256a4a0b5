import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { Violations } from "./chaos/lib/workers.js";
import { RECOVERY_SECTIONS } from "./chaos/scenarios/fenced-lock.js";
import { lockMutex, lockRedlock } from "./chaos/scenarios/lock.js";
import { type Acquisition, checkLockHistory, FencedRegister } from "./chaos/scenarios/lock-check.js";
import { lockTick } from "./chaos/scenarios/lock-tick.js";
import { lockRedlockSlow } from "./chaos/scenarios/redlock-slow.js";
import { checkTickHistory, type TickRun } from "./chaos/scenarios/tick-check.js";

/**
 * Short versions of the lock checker (`npm run test:chaos -- --filter lock` runs the long ones): 4 worker processes
 * contend for a Mutex / a Redlock, write through a fenced register, while workers are paused past the TTL or killed
 * and Redis nodes are killed, restarted and partitioned. `lock-tick`: 4 replicas race on runOncePerTick ticks whose
 * jobs outlast the lease and the tick record's TTL, while workers and Redis are paused. `lock-redlock-slow`: Redlock
 * leases held with auto-extension while masters are paused for less than a lease.
 */
describe("chaos: lock checker", () => {
  it("the checker detects overlapping sections, duplicate and regressing fences, and overlapping leases", () => {
    const register = new FencedRegister();
    // Two holders given the same fence: the register lets both through (equal fences pass), the checker does not.
    const a = register.begin("w1", 5);
    const b = register.begin("w2", 5);
    register.end("w1", 5, a.value + 1);
    register.end("w2", 5, b.value + 1);
    const history: Acquisition[] = [
      { worker: "w1", fence: 5, reqAt: 100, gotAt: 110, validUntil: 600, releaseAt: 200 },
      { worker: "w2", fence: 5, reqAt: 105, gotAt: 150, validUntil: 650, releaseAt: 210 },
      { worker: "w3", fence: 4, reqAt: 300, gotAt: 310, validUntil: 800, releaseAt: 320 },
    ];
    const violations = new Violations();
    checkLockHistory(register, history, violations);
    expect(violations.byKind).toEqual({
      overlap: 1,
      "fence-order": 1,
      "lost-update": 1,
      "duplicate-fence": 1,
      "fence-regression": 1,
      exclusion: 1,
    });
  });

  it("Mutex: no overlapping accepted sections, fences only go up, leases exclusive (Redis with AOF always)", async () => {
    const { result, replay } = await runShort(lockMutex, 3_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    // At least the sections the liveness check waits for after the heal (the history is never trivially empty).
    expect(result.details.sectionsAccepted as number, replay).toBeGreaterThanOrEqual(RECOVERY_SECTIONS);
  }, 240_000);

  it("Redlock over 3 masters: the same properties with one master down at a time", async () => {
    const { result, replay } = await runShort(lockRedlock, 3_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    // At least the sections the liveness check waits for after the heal (the history is never trivially empty).
    expect(result.details.sectionsAccepted as number, replay).toBeGreaterThanOrEqual(RECOVERY_SECTIONS);
  }, 240_000);

  it("the tick checker detects a tick run twice, an ok run that lost its tick, and history mismatches", () => {
    const run = (r: Partial<TickRun> & Pick<TickRun, "worker" | "fence">): TickRun => ({
      job: "once",
      tick: 1,
      startAt: 0,
      stopAt: 0,
      returnedAt: 0,
      outcome: "ok",
      ...r,
    });
    const runs: TickRun[] = [
      // "once" tick 1: a second run while the first still ran (its record expired mid-run).
      run({ worker: "a", fence: 1, startAt: 1_000, stopAt: 2_500, returnedAt: 2_510 }),
      run({ worker: "b", fence: 2, startAt: 2_100, stopAt: 3_600, returnedAt: 3_610 }),
      // "once" tick 2: a replica arriving well after the record's lifetime may run it again.
      run({ worker: "a", tick: 2, fence: 3, startAt: 5_000, stopAt: 6_000, returnedAt: 6_010 }),
      run({ worker: "b", tick: 2, fence: 4, startAt: 7_100, stopAt: 8_000, returnedAt: 8_010 }),
      // "retry" tick 1: c reported lost (fine, not recorded), d claimed it and reported ok, but it is recorded.
      run({ worker: "c", job: "retry", fence: 1, startAt: 0, stopAt: 1_500, returnedAt: 1_510, outcome: "lost" }),
      run({ worker: "d", job: "retry", fence: 2, startAt: 600, stopAt: 2_000, returnedAt: 2_010 }),
    ];
    const history = {
      once: [
        { tick: 1, fence: 1, ok: true },
        { tick: 2, fence: 3, ok: true },
        { tick: 2, fence: 4, ok: true },
      ],
      retry: [{ tick: 1, fence: 1, ok: true }],
    };
    const violations = new Violations();
    const summary = checkTickHistory(runs, history, 1_000, violations);
    expect(violations.byKind).toEqual({
      "tick-twice": 1,
      // a's ok on tick 1 while b had claimed it; b's ok is not in the history.
      "ok-not-held": 1,
      "ok-not-recorded": 2,
      "lost-recorded": 1,
    });
    expect(summary).toMatchObject({ ticks: 3, runs: 6, lateReruns: 1 });
  });

  it("runOncePerTick: no tick runs twice, an ok run held its tick throughout and is recorded (workers and Redis paused)", async () => {
    const { result, replay } = await runShort(lockTick, 2_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect(result.details.runs as number, replay).toBeGreaterThanOrEqual(8);
  }, 240_000);

  it("Redlock with masters paused for less than a lease: no lease reported lost while a quorum held its token", async () => {
    const { result, replay } = await runShort(lockRedlockSlow, 2_500);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect(result.operations, replay).toBeGreaterThanOrEqual(4);
  }, 240_000);
});
