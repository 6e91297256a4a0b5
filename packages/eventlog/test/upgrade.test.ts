import { createHash } from "node:crypto";
import { connect, entityKeys, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { previousAppend } from "./fixtures/previous-scripts.js";

const prefix = testPrefix("elupgrade");
let n = 0;

/** The payload digest the client stores with an idempotency key (as chain.ts computes it). */
const digestOf = (payload: string) => createHash("sha256").update(payload, "utf8").digest("base64url").slice(0, 22);

// Rolling upgrade: replicas of the previous release (its append script, its argument layout) append to the same
// log as upgraded ones. The stored formats are the same, so sequence numbers, the hash chain and idempotency records
// continue across both.
describe("appends of the previous release and this one, side by side", () => {
  let redis: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
  });

  /** One append by a replica of the previous release: [payload, windowMs, maxLen, maxAgeMs, chain, digest]. */
  const previous = (name: string, event: unknown, chain: boolean, idem?: string) => {
    const keys = entityKeys(prefix, "log", name);
    const payload = JSON.stringify(event);
    const dedupe = keys.sub("idem", idem ?? "");
    const args = [
      payload,
      idem === undefined ? 0 : 86_400_000,
      0,
      0,
      chain ? 1 : 0,
      idem === undefined ? "" : digestOf(payload),
    ];
    return redis.eval(previousAppend, 3, keys.base, keys.sub("meta"), dedupe, ...args);
  };

  it.each([false, true])(
    "interleaved appends keep one sequence, one chain and one idempotency (chain %s)",
    async (chain) => {
      const name = `up-${++n}`;
      const log = new EventLog<{ n: number }>(redis, name, { prefix, chain });
      const ids: string[] = [];
      ids.push(String(await previous(name, { n: 1 }, chain)));
      ids.push((await log.append({ n: 2 })).id);
      ids.push(String(await previous(name, { n: 3 }, chain, "k3")));
      ids.push((await log.append({ n: 4 }, { idempotencyKey: "k4" })).id);
      ids.push(String(await previous(name, { n: 5 }, chain)));
      // A key used by the other release answers duplicate with the first id, or a conflict for another payload.
      expect(await log.append({ n: 3 }, { idempotencyKey: "k3" })).toEqual({ id: ids[2], duplicate: true });
      await expect(log.append({ n: 9 }, { idempotencyKey: "k3" })).rejects.toThrow(/k3/);
      expect(await previous(name, { n: 4 }, chain, "k4")).toEqual([ids[3], 1]);
      const page = await log.read();
      expect(page.entries.map((e) => [e.id, e.seq, e.data])).toEqual(ids.map((id, i) => [id, i + 1, { n: i + 1 }]));
      if (chain) expect(await log.verify()).toMatchObject({ ok: true, checked: 5 });
    },
  );
});
