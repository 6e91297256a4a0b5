import { createHash } from "node:crypto";
import { type Entry, EventLog, UnverifiedEntryError } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elbeforeanchor");
const keyed = { key: Buffer.from("0123456789abcdef0123456789abcdef"), keyId: "k1" };

let n = 0;

type Raw = [string, string[]];

// Retention records the first entry it kept (the anchor): every entry before it was trimmed, and Redis never adds an
// id before the last one. An entry older than the anchor can only be put there by rewriting the stream: verify()
// reports it, and read() and tail() must not return it as a valid entry (README: "An entry that fails is never
// returned as valid", and an entry's verdict does not depend on where a read starts).
describe("an entry put back before the trim anchor of a chained log", () => {
  /** `redis` as Coordis uses it; `admin` unrestricted: the attacker with write access to Redis. */
  const clients = sharedClients();

  for (const [mode, chain] of [
    ["SHA-1 (a forged entry)", true],
    ["keyed (a genuine entry trimmed before, replayed)", keyed],
  ] as const) {
    it(`${mode}: read() and tail() flag it as verify() does; the anchor is still the valid start`, async () => {
      const log = new EventLog<number>(clients.redis, `anchor-${n++}`, { prefix, chain, maxLen: 10 });
      const admin = clients.admin;
      await log.append(0);
      const genuine = (await admin.xrange(log.keys.stream, "-", "+"))[0] as Raw;
      for (let i = 1; i < 300; i++) await log.append(i);
      const kept = (await admin.xrange(log.keys.stream, "-", "+")) as Raw[];
      const anchor = kept[0]?.[0] as string;
      expect(await admin.hget(log.keys.meta, "anchor")).toBe(anchor);
      expect(await log.verify()).toMatchObject({ ok: true });

      let put: Raw = genuine;
      if (chain === true) {
        // A well-formed SHA-1 entry: its own hash matches its content.
        const id = `${Number(anchor.split("-")[0]) - 1}-0`;
        const [d, s, p] = ['{"forged":true}', "5", "ab".repeat(20)];
        const h = createHash("sha1").update(`${p}\n${id}\n${s}\n${d}`).digest("hex");
        put = [id, ["d", d, "s", s, "p", p, "h", h]];
      }
      await admin.del(log.keys.stream);
      for (const [id, fields] of [put, ...kept]) await admin.xadd(log.keys.stream, id, ...fields);

      expect(await log.verify()).toMatchObject({ ok: false, brokenAt: put[0] });
      const err = await log.read({ limit: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnverifiedEntryError);
      expect((err as UnverifiedEntryError).entryId).toBe(put[0]);
      const marked = (await log.read({ limit: 3, unverified: "mark" })).entries;
      expect(marked.map((e) => [e.id, e.verified])).toEqual([
        [put[0], false],
        [anchor, true],
        [kept[1]?.[0], true],
      ]);
      // A page starting at the anchor: the entry put before it is no predecessor that breaks its link.
      expect((await log.read({ after: put[0], limit: 1 })).entries[0]).toMatchObject({ id: anchor, verified: true });

      const tailed: Entry<number>[] = [];
      for await (const e of log.tail({ from: "start", unverified: "mark" })) {
        tailed.push(e);
        if (tailed.length === 3) break;
      }
      expect(tailed.map((e) => [e.id, e.verified])).toEqual([
        [put[0], false],
        [anchor, true],
        [kept[1]?.[0], true],
      ]);
    });
  }
});
