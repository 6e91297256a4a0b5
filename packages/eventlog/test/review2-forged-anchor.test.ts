import { EventLog } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elanchor");

/** A keyed chain's key (the application's secret, which the attacker does not have). */
const KEY = "0123456789abcdef0123456789abcdef";

// verify() must not call retention tampering, so it accepts the first entry kept by the last trim (the anchor, a field
// of the meta hash) as the start of the chain. An attacker with write access to Redis can delete the oldest entries
// and point the anchor at the new oldest one: that looks exactly like retention, for the SHA-1 and the keyed chain
// alike (no MAC covers what retention removed). The README's table said a keyed chain detects the deletion of any
// entry but the newest; it detects it only while the anchor is left alone. What catches it is outside Redis, as for
// truncation at the newest end: a log that is never trimmed begins with sequence number 1.
describe("deleting the oldest entries of a chained log and moving the trim anchor", () => {
  const clients = sharedClients();

  it.each([
    ["SHA-1 chain", true],
    ["keyed chain", { key: KEY, keyId: "k1" }],
  ] as const)(
    "looks like retention to verify() and reads (%s); the first sequence number tells",
    async (_kind, chain) => {
      const log = new EventLog<number>(clients.redis, `anchor-${typeof chain}-${Date.now()}`, { prefix, chain });
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await log.append(i)).id);
      const [oldest, second, third] = ids as [string, string, string];

      // The two oldest entries deleted: reported while the anchor is left alone.
      await clients.admin.xdel(log.keys.stream, oldest, second);
      expect(await log.verify()).toMatchObject({ ok: false, brokenAt: third });

      // The anchor moved to the new oldest entry: indistinguishable from a retention trim.
      await clients.admin.hset(log.keys.meta, "anchor", third);
      expect(await log.verify()).toMatchObject({ ok: true, checked: 3 });
      const { entries } = await log.read();
      expect(entries.map((e) => [e.seq, e.verified])).toEqual([
        [3, true],
        [4, true],
        [5, true],
      ]);
      // A log that retention never trims begins with sequence number 1 (the check the README gives for such logs).
      expect(entries[0]?.seq).not.toBe(1);
    },
  );
});
