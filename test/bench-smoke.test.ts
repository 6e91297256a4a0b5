import { describe, expect, it } from "vitest";
import { parseArgs, runBench } from "./bench/harness.js";

// The benchmark harness in smoke mode (every scenario for ~100 ms, one round): proves that every scenario whose code
// exists runs, and that every declared round-trip figure holds. It asserts no speed: timings on a shared machine
// are not test material (see test/bench/README.md).
describe("benchmark harness (smoke)", () => {
  it("runs every available scenario with its declared round trips per operation", async () => {
    const lines: string[] = [];
    const report = await runBench({ ...parseArgs(["--smoke"]), log: (line) => lines.push(line) });
    const available = report.scenarios.filter((s) => s.status !== "unavailable");
    expect(available.length).toBeGreaterThan(20);
    for (const s of available) {
      expect(s.status, `${s.id}: ${s.error ?? ""}\n${lines.join("\n")}`).toBe("ok");
      const round = s.rounds[0];
      expect(round, `${s.id} has no round`).toBeDefined();
      // "Ran": operations completed in the closed loop or the sequential run (a 100 ms window on a loaded
      // machine can pass without a completion when a GC pause lands in it).
      expect((round?.ops ?? 0) + (round?.sequentialOps ?? 0), `${s.id} completed no operation`).toBeGreaterThan(0);
      expect(s.roundTrips?.roundTrips ?? 0, `${s.id} sent no command while counting`).toBeGreaterThanOrEqual(0);
      if (s.roundTrips?.declared !== undefined) {
        expect(s.roundTrips.perOp, `${s.id} round trips per operation`).toBe(s.roundTrips.declared);
      }
    }
    expect(report.roundTripViolations).toEqual([]);
    // Raw and peer scenarios do not depend on Coordis code: they must all be there.
    const missing = report.scenarios.filter((s) => s.kind !== "coordis" && s.status === "unavailable");
    expect(missing.map((s) => s.id)).toEqual([]);
  }, 90_000);
});
