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
        if (s.roundTrips.bound === "at-most") {
          expect(s.roundTrips.perOp, `${s.id} round trips per operation`).toBeLessThanOrEqual(s.roundTrips.declared);
        } else {
          expect(s.roundTrips.perOp, `${s.id} round trips per operation`).toBe(s.roundTrips.declared);
        }
      }
    }
    // The micro-batched rows (issue 9) ran, counted their round trips with calls in flight (≤ 1 per operation), and
    // carry the figures their target is judged by: p99 at 50 in flight and CPU per operation on both sides.
    const batched = ["ratelimit/coordis-fixed-window-batched", "leaderboard/coordis-submit-batched"];
    batched.push("eventlog/coordis-plain-batched");
    for (const id of batched) {
      const s = report.scenarios.find((x) => x.id === id);
      expect(s?.status, `${id}: ${s?.note ?? s?.error ?? "missing"}`).toBe("ok");
      expect(s?.roundTrips?.bound, id).toBe("at-most");
      expect(s?.roundTrips?.concurrency, id).toBeGreaterThan(1);
      expect(s?.roundTrips?.perOp, `${id} round trips per operation`).toBeLessThanOrEqual(1);
      expect(s?.roundTrips?.perOp, `${id} round trips per operation`).toBeGreaterThan(0);
      const round = s?.rounds[0];
      if ((round?.ops ?? 0) > 0) {
        expect(round?.inFlightP99Ms, `${id} p99 in flight`).toBeGreaterThan(0);
        expect(round?.clientCpuUsPerOp, `${id} client CPU`).toBeGreaterThanOrEqual(0);
        expect(round?.redisCpuUsPerOp, `${id} Redis CPU`).toBeGreaterThanOrEqual(0);
      }
    }
    expect(report.roundTripViolations).toEqual([]);
    // The HTTP rows ran in a part of their own, after every other scenario had been torn down.
    const part = lines.findIndex((line) => line.includes("part of its own: http route (autocannon)"));
    expect(part, lines.join("\n")).toBeGreaterThan(-1);
    const setUps = lines.map((line, i) => ({ i, id: / set up (\S+)/.exec(line)?.[1] })).filter((x) => x.id);
    expect(setUps.filter((x) => x.id?.startsWith("http/")).every((x) => x.i > part)).toBe(true);
    expect(setUps.filter((x) => !x.id?.startsWith("http/")).every((x) => x.i < part)).toBe(true);
    // Raw and peer scenarios do not depend on Coordis code: they must all be there.
    const missing = report.scenarios.filter((s) => s.kind !== "coordis" && s.status === "unavailable");
    expect(missing.map((s) => s.id)).toEqual([]);
  }, 90_000);
});
