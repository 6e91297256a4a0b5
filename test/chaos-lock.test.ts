import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { Violations } from "./chaos/lib/workers.js";
import {
  type Acquisition,
  checkLockHistory,
  FencedRegister,
  lockMutex,
  lockRedlock,
  RECOVERY_SECTIONS,
} from "./chaos/scenarios/lock.js";

/**
 * Short versions of the lock checker (`npm run test:chaos -- --filter lock` runs the long ones): 4 worker processes
 * contend for a Mutex / a Redlock, write through a fenced register, while workers are paused past the TTL or killed
 * and Redis nodes are killed, restarted and partitioned.
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
});
