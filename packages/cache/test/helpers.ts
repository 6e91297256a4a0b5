import type { OperationEvent } from "@coordis/core";

/** `{tier}/{result}` of every cache `get` operation recorded. */
export function tiers(rec: { ops: OperationEvent[] }): string[] {
  return rec.ops
    .filter((o) => o.primitive === "cache" && o.op === "get")
    .map((o) => `${o.attributes?.tier}/${o.attributes?.result}`);
}
