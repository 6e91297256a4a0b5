import { connect } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("eldlqreset");

// Handlers that fail (some always, some once) on consumers whose connections are reset again and again: every
// entry ends handled or dead-lettered once with its handler's error, none both, none left pending.
describe("dead letters across repeated connection resets", () => {
  const redis = proxiedServer({ leastPrivilege: true });

  it("poison entries are dead-lettered once with their error; the others are handled and not dead-lettered", async () => {
    const clients = [connect(redis.proxy.url), connect(redis.proxy.url), connect(redis.proxy.url)];
    for (const c of clients) c.on("error", () => {});
    const succeeded = new Map<number, number>();
    const attempts = new Map<number, number>();
    const consumers = clients.map((c, i) =>
      new EventLog<number>(c, "poison", { prefix }).group("g", { consumer: `c${i}` }).consume(
        async (e, { deliveries }) => {
          attempts.set(e.data, (attempts.get(e.data) ?? 0) + 1);
          await new Promise((resolve) => setImmediate(resolve));
          if (e.data % 7 === 0) throw new Error(`poison ${e.data} (delivery ${deliveries})`);
          if (e.data % 5 === 0 && deliveries === 1) throw new Error(`flaky ${e.data}`);
          succeeded.set(e.data, (succeeded.get(e.data) ?? 0) + 1);
        },
        { concurrency: 4, batch: 4, claimIdleMs: 1_000, claimIntervalMs: 100, blockMs: 100, maxDeliveries: 3 },
      ),
    );
    const appender = new EventLog<number>(redis.direct, "poison", { prefix });
    const TOTAL = 140;
    const poison = Array.from({ length: TOTAL }, (_, i) => i).filter((i) => i % 7 === 0);
    const good = Array.from({ length: TOTAL }, (_, i) => i).filter((i) => i % 7 !== 0);
    try {
      for (let i = 0; i < TOTAL; i++) {
        await appender.append(i);
        if (i % 35 === 34) {
          await waitUntil(`attempted ${i - 20} entries`, () => attempts.size >= i - 20, 10_000);
          redis.proxy.dropConnections();
        }
      }
      await waitUntil(
        `all good entries handled (${succeeded.size}/${good.length})`,
        () => good.every((i) => succeeded.has(i)),
        30_000,
      );
      await waitUntil(
        "every poison entry dead-lettered",
        async () => (await appender.deadLetters({ limit: 1000 })).length >= poison.length,
        30_000,
      );
      const group = appender.group("g", { consumer: "metrics" });
      await waitUntil("nothing pending", async () => (await group.info())?.pending === 0, 20_000);
    } finally {
      await Promise.all(consumers.map((c) => c.stop({ timeoutMs: 3_000 })));
      for (const c of clients) c.disconnect();
    }
    const letters = await appender.deadLetters({ limit: 1000 });
    const entryData = new Map((await appender.read({ limit: 1000 })).entries.map((e) => [e.id, e.data]));
    const lettered = letters.map((l) => entryData.get(l.entryId));
    expect(lettered.sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(poison);
    expect(letters.every((l) => l.data === entryData.get(l.entryId) && l.group === "g")).toBe(true);
    expect(letters.every((l) => /poison|not acknowledged/.test(l.error))).toBe(true);
    expect(poison.every((i) => !succeeded.has(i))).toBe(true);
  }, 60_000);
});
