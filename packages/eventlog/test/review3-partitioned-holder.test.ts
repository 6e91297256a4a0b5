import { connect } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elpartition");

// A holder cut off from Redis (a partition, not a stall: its timers run and its refreshes are sent into the void)
// past claimIdleMs while its handler runs; another consumer's claim dead-letters the entry at its last delivery. The
// partition heals and the handler succeeds: the XACK finds the entry acknowledged, and the dead letter is removed.
describe("a consumer partitioned from Redis past claimIdleMs, whose handler then succeeds", () => {
  const redis = proxiedServer({ leastPrivilege: true });

  it("acknowledges late: the claim's dead letter naming it is removed, the outcome is acked-late", async () => {
    const cut = connect(redis.proxy.url);
    cut.on("error", () => {});
    const observer = recordObserver();
    const log = new EventLog<string>(cut, "partitioned", { prefix, observer });
    const producer = new EventLog<string>(redis.direct, "partitioned", { prefix });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const started: string[] = [];
    const options = { claimIdleMs: 600, claimIntervalMs: 50, blockMs: 50, maxDeliveries: 1 };
    const holder = log.group("g", { consumer: "holder" }).consume(async (e) => {
      started.push(e.data);
      await gate;
    }, options);
    let claimer: ReturnType<ReturnType<typeof producer.group>["consume"]> | undefined;
    try {
      const { id } = await producer.append("x");
      await waitUntil("the holder's handler started", () => started.length === 1, 5_000);
      redis.proxy.blackhole();
      claimer = producer.group("g", { consumer: "claimer" }).consume(() => {}, options);
      await waitUntil("the claim dead-lettered the entry", async () => (await producer.deadLetters()).length === 1);
      const [letter] = await producer.deadLetters();
      expect(letter).toMatchObject({ entryId: id, consumer: "holder", claimedBy: "claimer", deliveries: 1 });
      await claimer.stop();
      redis.proxy.heal();
      // The holder's client is connected again (the XACK must not go out on the connection the heal reset).
      await waitUntil("the holder's client answers", () =>
        cut.ping().then(
          () => true,
          () => false,
        ),
      );
      release();
      await waitUntil(
        "the holder's acknowledgement settled",
        () => holder.stats().ackedLate + holder.stats().acked > 0,
        10_000,
      ).catch(() => {
        const ops = observer.ops.map((o) => `${o.op} ${o.outcome}`);
        throw new Error(`not settled: ${JSON.stringify(holder.stats())}, reported ${ops.join(", ")}`);
      });
      expect(holder.stats()).toMatchObject({ ackedLate: 1, acked: 0, inflight: 0, acking: 0 });
      expect(await producer.deadLetters()).toEqual([]);
    } finally {
      release();
      await claimer?.stop();
      await holder.stop({ timeoutMs: 3_000 });
      cut.disconnect();
    }
  });
});
