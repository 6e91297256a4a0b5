import type { RedisClient } from "@coordis/core";

/**
 * The port of the master serving hash slot `slot` on the Cluster `client` talks to, read from `CLUSTER SLOTS` (what
 * the node asked answers now, not the client's cached slot map). Throws when no node serves the slot.
 */
export async function slotOwnerPort(client: Pick<RedisClient, "call">, slot: number): Promise<number> {
  const ranges = (await client.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number, string]]>;
  const range = ranges.find(([from, to]) => from <= slot && slot <= to);
  if (range === undefined) throw new Error(`no node serves slot ${slot}`);
  return range[2][1];
}
