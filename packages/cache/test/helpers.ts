import type { CoordisEvent, CoordisObserver, OperationEvent } from "@coordis/core";

/** Polls `check` until it returns true or the deadline passes; returns the elapsed ms. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = "condition") {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An observer that records everything. */
export function recorder(): CoordisObserver & { ops: OperationEvent[]; events: CoordisEvent[] } {
  const ops: OperationEvent[] = [];
  const events: CoordisEvent[] = [];
  return { ops, events, onOperation: (e) => ops.push(e), onEvent: (e) => events.push(e) };
}

/** `{tier}/{result}` of every cache `get` operation recorded. */
export function tiers(rec: { ops: OperationEvent[] }): string[] {
  return rec.ops
    .filter((o) => o.primitive === "cache" && o.op === "get")
    .map((o) => `${o.attributes?.tier}/${o.attributes?.result}`);
}
