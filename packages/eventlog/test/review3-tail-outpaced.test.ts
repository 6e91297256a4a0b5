import { type Entry, EventLog, type EventLogOptions, GapError } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("eloutpaced");
const KEY = Buffer.from("0123456789abcdef0123456789abcdef");

let n = 0;
const name = (label: string) => `${label}-${n++}`;

describe("a tail outpaced by appends that retention trims, following each GapError", () => {
  const clients = sharedClients();

  for (const [label, options] of [
    ["plain", {}],
    ["SHA-1 chain", { chain: true }],
    ["keyed chain", { chain: { key: KEY, keyId: "k1" } }],
    ["batched SHA-1 chain", { chain: true, batch: true }],
  ] as Array<[string, EventLogOptions]>) {
    it(`${label}: what it yields plus what the gaps count is every entry, in order, once`, async () => {
      const logName = name("outpaced");
      const writer = new EventLog<number>(clients.redis, logName, { prefix, ...options, maxLen: 5 });
      const reader = new EventLog<number>(clients.redis, logName, { prefix, ...options });
      const total = 600;
      let appended = 0;
      const appendBurst = async (count: number) => {
        const burst = Array.from({ length: Math.min(count, total - appended) }, () => writer.append(appended++));
        await Promise.all(burst);
      };
      await appendBurst(20);
      const seen: Entry<number>[] = [];
      const gaps: Array<{ missed: number | undefined; lastSeq: number | undefined }> = [];
      let from = "start";
      for (let attempt = 0; attempt < 500 && seen.at(-1)?.data !== total - 1; attempt++) {
        try {
          for await (const e of reader.tail({ from, blockMs: 50, batch: 3 })) {
            seen.push(e);
            from = e.id;
            if (e.data === total - 1) break;
            // The writer outpaces the tail: each entry read lets more through than the tail's batch.
            if (seen.length % 2 === 0) await appendBurst(7);
          }
        } catch (err) {
          if (!(err instanceof GapError)) throw err;
          gaps.push({ missed: err.missed, lastSeq: seen.at(-1)?.seq });
          from = err.resumeAfter as string;
          await appendBurst(7);
        }
      }
      expect(seen.at(-1)?.data).toBe(total - 1);
      expect(gaps.length).toBeGreaterThan(0);
      // In order, each once; data and sequence number agree (data i has seq i + 1).
      for (let i = 1; i < seen.length; i++) {
        expect((seen[i] as Entry<number>).seq).toBeGreaterThan((seen[i - 1] as Entry<number>).seq);
      }
      expect(seen.every((e) => e.seq === e.data + 1 && e.verified !== false)).toBe(true);
      // Where a gap's count is known it is exact: the entry yielded after it is that many sequence numbers on.
      let g = 0;
      for (let i = 0, prevSeq = 0; i < seen.length; i++) {
        const e = seen[i] as Entry<number>;
        if (e.seq !== prevSeq + 1) {
          // A jump: some gap(s) reported since the previous entry; known counts add up to it.
          const reported: Array<number | undefined> = [];
          while (g < gaps.length && (gaps[g]?.lastSeq ?? 0) <= prevSeq) reported.push(gaps[g++]?.missed);
          expect(reported.length, `jump ${prevSeq} -> ${e.seq} reported`).toBeGreaterThan(0);
          if (reported.every((m) => m !== undefined)) {
            expect(
              reported.reduce((a, b) => (a ?? 0) + (b ?? 0), 0),
              `jump ${prevSeq} -> ${e.seq}`,
            ).toBe(e.seq - prevSeq - 1);
          }
        }
        prevSeq = e.seq;
      }
    });
  }
});

describe("a keyed chain during a rolling key rotation", () => {
  const clients = sharedClients();

  it("appends signed with the old and the new key interleave; read, tail and verify accept every one", async () => {
    const logName = name("rolling");
    const key2 = Buffer.from("fedcba9876543210fedcba9876543210");
    const rotated = { key: key2, keyId: "k2", previousKeys: { k1: KEY } };
    const old = new EventLog<number>(clients.redis, logName, { prefix, chain: { key: KEY, keyId: "k1" } });
    const fresh = new EventLog<number>(clients.redis, logName, { prefix, chain: rotated, maxLen: 1000 });
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? old : fresh).append(i, { idempotencyKey: `r${i}` })),
    );
    expect(results.every((r) => !r.duplicate)).toBe(true);
    const reader = new EventLog<number>(clients.redis, logName, { prefix, chain: rotated });
    expect(await reader.verify()).toMatchObject({ ok: true, checked: 60 });
    const { entries } = await reader.read({ limit: 1000 });
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
    expect(new Set(entries.map((e) => e.keyId))).toEqual(new Set(["k1", "k2"]));
    // Pages of every size start at entries signed with either key.
    for (const limit of [1, 2, 7]) {
      let after: string | undefined;
      let count = 0;
      for (;;) {
        const page = await reader.read({ limit, ...(after === undefined ? {} : { after }) });
        count += page.entries.filter((e) => e.verified === true).length;
        if (page.next === undefined) break;
        after = page.next;
      }
      expect(count, `limit ${limit}`).toBe(60);
    }
    const tailed: Entry<number>[] = [];
    for await (const e of reader.tail({ from: entries[10]?.id as string, blockMs: 50, batch: 4 })) {
      tailed.push(e);
      if (tailed.length === 49) break;
    }
    expect(tailed.map((e) => e.seq)).toEqual(entries.slice(11).map((e) => e.seq));
    expect(tailed.every((e) => e.verified === true)).toBe(true);
  });
});
