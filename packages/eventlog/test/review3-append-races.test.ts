import { connect, type RedisClient } from "@coordis/core";
import { type AppendResult, EventLog, type EventLogOptions } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elraces");
const KEY = Buffer.from("0123456789abcdef0123456789abcdef");
const keyed = { key: KEY, keyId: "k1" };

let n = 0;
const name = (label: string) => `${label}-${n++}`;

/** Every kind of append path: the script's straight-line paths, its general code, the batch and the keyed script. */
const MODES: Array<[string, EventLogOptions]> = [
  ["plain", {}],
  ["plain with maxLen", { maxLen: 1000 }],
  ["SHA-1 chain", { chain: true }],
  ["SHA-1 chain with maxAgeMs", { chain: true, maxAgeMs: 3_600_000 }],
  ["keyed chain", { chain: keyed }],
  ["batched", { batch: true }],
  ["batched SHA-1 chain with maxLen", { batch: true, chain: true, maxLen: 1000 }],
];

describe("concurrent appends of one idempotency key from several clients", () => {
  /** One connection per simulated process: appends race in Redis, not in one client's pipeline only. */
  let clients: RedisClient[] = [];
  beforeAll(() => {
    clients = Array.from({ length: 6 }, () => connect(inject("coordisRedisUrl")));
  });
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  for (const [label, options] of MODES) {
    it(`${label}: the same payload is appended once; every caller gets its id`, async () => {
      const logName = name("same");
      const logs = clients.map((c) => new EventLog<{ v: number }>(c, logName, { prefix, ...options }));
      const results = await Promise.all(
        logs.flatMap((log) =>
          Array.from({ length: 5 }, () => log.append({ v: 1 }, { idempotencyKey: "order-{42}:é" })),
        ),
      );
      const appended = results.filter((r) => !r.duplicate);
      expect(appended).toHaveLength(1);
      const id = appended[0]?.id;
      expect(results.every((r) => r.id === id && r.conflict === undefined)).toBe(true);
      const reader = logs[0] as EventLog<{ v: number }>;
      expect(await reader.length()).toBe(1);
      const { entries } = await reader.read();
      expect(entries.map((e) => [e.id, e.seq, e.data])).toEqual([[id, 1, { v: 1 }]]);
      if (options.chain !== undefined) expect(await reader.verify()).toMatchObject({ ok: true, checked: 1 });
    });

    it(`${label}: different payloads: one is appended, every other caller is told of the conflict`, async () => {
      const logName = name("diff");
      const logs = clients.map(
        (c) => new EventLog<{ v: number }>(c, logName, { prefix, ...options, idempotencyConflict: "report" }),
      );
      const results: Array<[number, AppendResult]> = await Promise.all(
        logs.flatMap((log, k) =>
          Array.from({ length: 4 }, async (_, i) => {
            const v = k * 10 + i;
            return [v, await log.append({ v }, { idempotencyKey: "k".repeat(512) })] as [number, AppendResult];
          }),
        ),
      );
      const appended = results.filter(([, r]) => !r.duplicate);
      expect(appended).toHaveLength(1);
      const [winner, first] = appended[0] as [number, AppendResult];
      for (const [, r] of results) {
        if (r === first) continue;
        expect(r).toEqual({ id: first.id, duplicate: true, conflict: true });
      }
      const reader = logs[0] as EventLog<{ v: number }>;
      const { entries } = await reader.read();
      expect(entries.map((e) => [e.id, e.data])).toEqual([[first.id, { v: winner }]]);
      // The winner's payload is the one remembered: repeating it is a plain duplicate.
      expect(await reader.append({ v: winner }, { idempotencyKey: "k".repeat(512) })).toEqual({
        id: first.id,
        duplicate: true,
      });
    });
  }

  it("many keys, each raced by every client, over every path at once: one entry per key, one unbroken chain", async () => {
    const logName = name("mixed");
    // Each client appends through another path to the same SHA-1 chained log (the script's straight-line chained
    // path, its general code with a key or retention, and batches).
    const variants: EventLogOptions[] = [
      { chain: true },
      { chain: true, maxLen: 10_000 },
      { chain: true, batch: true },
      { chain: true, maxAgeMs: 3_600_000 },
      { chain: true, batch: { maxSize: 3 }, maxLen: 10_000 },
      { chain: true },
    ];
    const logs = clients.map((c, k) => new EventLog<string>(c, logName, { prefix, ...variants[k] }));
    const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
    const results = await Promise.all(
      logs.flatMap((log, k) => [
        ...keys.map((key) => log.append(key, { idempotencyKey: key }).then((r) => [key, r] as const)),
        // Appends without a key, interleaved.
        ...Array.from({ length: 10 }, (_, i) => log.append(`free-${k}-${i}`).then((r) => [null, r] as const)),
      ]),
    );
    const byKey = new Map<string, Set<string>>();
    for (const [key, r] of results) {
      if (key === null) continue;
      const ids = byKey.get(key) ?? new Set();
      ids.add(r.id);
      byKey.set(key, ids);
    }
    expect([...byKey.values()].every((ids) => ids.size === 1)).toBe(true);
    const reader = logs[0] as EventLog<string>;
    const { entries } = await reader.read({ limit: 1000 });
    expect(entries).toHaveLength(keys.length + clients.length * 10);
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
    const keyed = entries.filter((e) => e.data.startsWith("key-"));
    expect(keyed.map((e) => e.data).sort()).toEqual([...keys].sort());
    for (const e of keyed) expect(byKey.get(e.data)).toEqual(new Set([e.id]));
    expect(await reader.verify()).toMatchObject({ ok: true, checked: entries.length, unchainedCount: 0 });
  });
});
