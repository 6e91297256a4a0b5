import type { RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elfuture");
const keyed = { key: Buffer.from("0123456789abcdef0123456789abcdef"), keyId: "k1" };

let n = 0;
const name = (label: string) => `${label}-${n++}`;

/** Server time in ms. */
async function serverNow(redis: RedisClient): Promise<number> {
  const [s, us] = (await redis.time()) as [string | number, string | number];
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

// An entry added by something other than EventLog.append (a raw XADD) is reported by verify(), and appends go on
// after it: also when its id lies in the future (an explicit id, or a clock ahead), which Redis then requires of every
// later id.
describe("appends after a foreign entry whose id is in the future", () => {
  /** `redis` as Coordis uses it; `admin` unrestricted: something other than Coordis writing to the stream. */
  const clients = sharedClients();

  for (const [mode, chain] of [
    ["SHA-1 chain", true],
    ["keyed chain", keyed],
  ] as const) {
    it(`${mode}: the next appends land after it, link to the last append and verify; verify() names the foreign entry`, async () => {
      const log = new EventLog<{ i: number }>(clients.redis, name("future"), { prefix, chain });
      await log.append({ i: 0 });
      const foreign = `${(await serverNow(clients.admin)) + 60_000}-0`;
      expect(await clients.admin.xadd(log.keys.stream, foreign, "d", '{"i":-1}')).toBe(foreign);
      const a = await log.append({ i: 1 });
      const b = await log.append({ i: 2 });
      expect(a.duplicate).toBe(false);
      expect(BigInt(a.id.split("-")[0] as string)).toBeGreaterThanOrEqual(BigInt(foreign.split("-")[0] as string));
      const { entries } = await log.read({ unverified: "mark" });
      expect(entries.map((e) => [e.data.i, e.verified])).toEqual([
        [0, true],
        [-1, false],
        [1, true],
        [2, true],
      ]);
      expect(entries.map((e) => e.id)).toEqual([entries[0]?.id, foreign, a.id, b.id]);
      const result = await log.verify();
      expect(result).toMatchObject({ ok: false, brokenAt: foreign, checked: 3, unchainedCount: 1 });
      expect(result.unchained.map((u) => u.id)).toEqual([foreign]);
    });
  }

  // Redis requires every later id to exceed the largest id ever added, also once that entry is deleted: removing the
  // entry verify() reported must not leave the log unwritable until server time reaches its id.
  for (const [mode, options] of [
    ["SHA-1 chain", { chain: true }],
    ["SHA-1 chain, batched", { chain: true, batch: true }],
    ["keyed chain", { chain: keyed }],
  ] as const) {
    it(`${mode}: once the foreign entry is deleted, appends land after its id and the log verifies`, async () => {
      const log = new EventLog<{ i: number }>(clients.redis, name("deleted"), { prefix, ...options });
      await log.append({ i: 0 });
      const foreign = `${(await serverNow(clients.admin)) + 60_000}-0`;
      await clients.admin.xadd(log.keys.stream, foreign, "d", '{"i":-1}');
      expect(await clients.admin.xdel(log.keys.stream, foreign)).toBe(1);
      const [a, b] = await Promise.all([log.append({ i: 1 }), log.append({ i: 2 })]);
      expect(a?.duplicate).toBe(false);
      expect(BigInt(a?.id.split("-")[0] as string)).toBeGreaterThanOrEqual(BigInt(foreign.split("-")[0] as string));
      const { entries } = await log.read();
      expect(entries.map((e) => [e.data.i, e.verified])).toEqual([
        [0, true],
        [1, true],
        [2, true],
      ]);
      expect(entries.map((e) => e.id).slice(1)).toEqual([a?.id, b?.id]);
      expect(await log.verify()).toMatchObject({ ok: true, checked: 3, unchainedCount: 0 });
    });
  }
});
