import { InvalidArgumentError } from "@coordis/core";
import { type Entry, EventLog, type EventLogOptions } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elodd");
const KEY = Buffer.from("0123456789abcdef0123456789abcdef");
const keyed = { key: KEY, keyId: "k1" };

let n = 0;
const name = (label: string) => `${label}-${n++}`;

const MODES: Array<[string, EventLogOptions]> = [
  ["plain", {}],
  ["plain with maxLen", { maxLen: 1000 }],
  ["SHA-1 chain", { chain: true }],
  ["SHA-1 chain with maxLen", { chain: true, maxLen: 1000 }],
  ["keyed chain", { chain: keyed }],
  ["batched SHA-1 chain", { chain: true, batch: true }],
];

/** Events JSON encodes in odd ways, with an idempotency key each (keys with braces, spaces, newlines, many bytes). */
const ODD: Array<[unknown, string]> = [
  [{}, "{}"],
  [[], "[]"],
  [null, "null"],
  [0, "0"],
  ["", "  "],
  [{ s: "\u0000\n\r\t\\\"'" }, "a\nb"],
  [{ "": { "": [] } }, "}{"],
  ["😀 日本語 \u2028\u2029 é e\u0301 \uFEFF", "{tag}"],
  [{ big: -1e308, small: 5e-324, neg: -0 }, "😀".repeat(128)], // 512 bytes
  ["x".repeat(10_000), "日".repeat(170)], // 510 bytes
  [{ nested: Array.from({ length: 50 }, (_, i) => ({ i })) }, "k".repeat(512)],
];

describe("odd events and idempotency keys", () => {
  const clients = sharedClients();

  for (const [label, options] of MODES) {
    it(`${label}: each is appended, read back equal, verified, and its key answers duplicate`, async () => {
      const log = new EventLog<unknown>(clients.redis, name("odd"), { prefix, ...options });
      const firsts = await Promise.all(ODD.map(([event, key]) => log.append(event, { idempotencyKey: key })));
      expect(firsts.every((r) => !r.duplicate)).toBe(true);
      const { entries } = await log.read({ limit: 1000 });
      expect(entries.map((e) => e.data)).toEqual(ODD.map(([event]) => JSON.parse(JSON.stringify(event))));
      expect(entries.map((e) => e.id)).toEqual(firsts.map((r) => r.id));
      if (options.chain !== undefined) {
        expect(entries.every((e) => e.verified === true)).toBe(true);
        expect(await log.verify()).toMatchObject({ ok: true, checked: ODD.length });
      }
      const again = await Promise.all(ODD.map(([event, key]) => log.append(event, { idempotencyKey: key })));
      expect(again).toEqual(firsts.map((r) => ({ id: r.id, duplicate: true })));
      expect(await log.length()).toBe(ODD.length);
    });

    it(`${label}: an event of exactly maxEventBytes is appended and read back; one byte more is refused`, async () => {
      const log = new EventLog<string>(clients.redis, name("big"), { prefix, ...options });
      // "é" is two bytes: a string of 2-byte characters, quoted, exactly 1 MiB of JSON.
      const max = 1024 * 1024;
      const exact = `${"é".repeat((max - 2) / 2)}`;
      const { id } = await log.append(exact, { idempotencyKey: "big" });
      const err = await log.append(`${exact}x`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(await log.append(exact, { idempotencyKey: "big" })).toEqual({ id, duplicate: true });
      const { entries } = await log.read();
      expect(entries).toHaveLength(1);
      expect(entries[0]?.data === exact).toBe(true);
      if (options.chain !== undefined) expect(await log.verify()).toMatchObject({ ok: true, checked: 1 });
    });
  }
});

describe("cursor paging while entries are appended and trimmed", () => {
  const clients = sharedClients();

  for (const [label, options] of [
    ["plain", {}],
    ["SHA-1 chain", { chain: true }],
    ["keyed chain", { chain: keyed }],
  ] as Array<[string, EventLogOptions]>) {
    it(`${label}: forward and reverse pages never repeat or reorder an entry and never fail`, async () => {
      const logName = name("paging");
      const writer = new EventLog<number>(clients.redis, logName, { prefix, ...options, maxLen: 30 });
      const reader = new EventLog<number>(clients.redis, logName, { prefix, ...options });
      for (let i = 0; i < 60; i++) await writer.append(i);
      let appended = 60;
      let stop = false;
      const appending = (async () => {
        while (!stop) {
          await Promise.all(Array.from({ length: 4 }, () => writer.append(appended++)));
        }
      })();
      try {
        for (let round = 0; round < 10; round++) {
          // Forward from the start, 7 at a time, until a page comes back short of entries.
          const forward: Entry<number>[] = [];
          let after: string | undefined;
          for (let page = 0; page < 40; page++) {
            const res = await reader.read({ limit: 7, ...(after === undefined ? {} : { after }) });
            forward.push(...res.entries);
            if (res.next === undefined) break;
            after = res.next;
          }
          expectIncreasing(forward);
          // Backwards from the newest, 5 at a time, until the oldest kept entry.
          const reverse: Entry<number>[] = [];
          let before: string | undefined;
          for (let page = 0; page < 40; page++) {
            const res = await reader.read({ reverse: true, limit: 5, ...(before === undefined ? {} : { before }) });
            reverse.push(...res.entries);
            if (res.next === undefined) break;
            before = res.next;
          }
          expectIncreasing(reverse.reverse());
        }
      } finally {
        stop = true;
        await appending;
      }
      if (options.chain !== undefined) expect((await reader.verify()).ok).toBe(true);
    });
  }
});

/** Ids, sequence numbers and data strictly increasing (no entry twice, none out of order), every entry verified. */
function expectIncreasing(entries: Entry<number>[]): void {
  expect(entries.length).toBeGreaterThan(0);
  for (let i = 1; i < entries.length; i++) {
    const [a, b] = [entries[i - 1] as Entry<number>, entries[i] as Entry<number>];
    expect(b.seq).toBeGreaterThan(a.seq);
    expect(b.data).toBeGreaterThan(a.data);
  }
  expect(entries.every((e) => e.verified !== false)).toBe(true);
}
