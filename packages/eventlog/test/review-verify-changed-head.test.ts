import { EventLog, type EventLogOptions } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elchangedhead");
const keyed = { key: Buffer.from("0123456789abcdef0123456789abcdef"), keyId: "k1" };

let n = 0;

// verify() reports the first problem (brokenAt, reason). A change to the newest entry is that entry's problem, as a
// change to any other entry is: not a deletion or replacement of the intact entry before it.
describe("verify() of a log whose newest entry was changed", () => {
  /** `redis` as Coordis uses it; `admin` unrestricted: the attacker with write access to Redis. */
  const clients = sharedClients();

  for (const [mode, chain] of [
    ["SHA-1", true],
    ["keyed", keyed],
  ] as const) {
    it(`${mode}: brokenAt is the changed entry, not the intact one before it`, async () => {
      const options: EventLogOptions = { prefix, chain };
      const log = new EventLog<number>(clients.redis, `head-${n++}`, options);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await log.append(i)).id);
      // Rewrite the stream with the newest entry's payload changed (same id, same chain fields).
      const admin = clients.admin;
      const raw = await admin.xrange(log.keys.stream, "-", "+");
      await admin.del(log.keys.stream);
      for (const [id, fields] of raw) {
        await admin.xadd(log.keys.stream, id, ...(id === ids[4] ? fields.map((v) => (v === "4" ? "44" : v)) : fields));
      }
      const result = await log.verify();
      expect(result).toMatchObject({
        ok: false,
        brokenAt: ids[4],
        reason: expect.stringMatching(/changed/),
        checked: 4,
        unchainedCount: 1,
      });
      expect(result.unchained.map((u) => u.id)).toEqual([ids[4]]);

      // The same entry rewritten without chain fields: also that entry's problem.
      await admin.del(log.keys.stream);
      for (const [id, fields] of raw) await admin.xadd(log.keys.stream, id, ...(id === ids[4] ? ["d", "44"] : fields));
      expect(await log.verify()).toMatchObject({
        ok: false,
        brokenAt: ids[4],
        reason: expect.stringMatching(/chain fields/),
      });

      // The newest entry deleted: still reported at the intact entry before it, as a missing head.
      await admin.xdel(log.keys.stream, ids[4] as string);
      expect(await log.verify()).toMatchObject({ ok: false, brokenAt: ids[3], reason: expect.stringMatching(/head/) });
    });
  }
});
