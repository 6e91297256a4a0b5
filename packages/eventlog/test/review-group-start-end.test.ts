import { connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type FaultProxy, recordObserver, startProxy, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elstartend");

// README: `startAt: "end"` makes a new group start after the entries already in the log; only a group lost while a
// consumer runs is created again from the start. A consumer started while Redis is unreachable fails its first XGROUP
// CREATE; a claim due before the next attempt then gets NOGROUP. That group was never lost (it never existed): it must
// be created as a new one, where startAt says, not from the start (which delivers the whole history to an "end" group)
// nor reported as `group-recreated`.
describe('a consumer of a new startAt: "end" group started while Redis is unreachable', () => {
  let proxy: FaultProxy;
  let direct: RedisClient;
  beforeAll(async () => {
    proxy = await startProxy({ target: inject("coordisRedisUrl") });
    direct = connect(inject("coordisRedisUrl"));
  });
  afterAll(async () => {
    direct.disconnect();
    await proxy.close();
  });

  it("gets only the entries appended after the group is created once Redis answers", async () => {
    const producer = new EventLog<number>(direct, "history", { prefix });
    for (let i = 0; i < 5; i++) await producer.append(i);
    proxy.refuse();
    const client = connect(proxy.url, { commandTimeoutMs: 500 });
    client.on("error", () => {});
    const observer = recordObserver();
    const group = new EventLog<number>(client, "history", { prefix, observer }).group("g", {
      consumer: "c1",
      startAt: "end",
    });
    const got: number[] = [];
    // A claim is due after every failed attempt to create the group (claimIntervalMs well below the retry pause).
    const consumer = group.consume((e) => void got.push(e.data), { claimIntervalMs: 10, blockMs: 50 });
    try {
      await observer.waitForEvent((e) => e.type === "consume-claim-error");
      await observer.waitForEvent((e) => e.type === "consume-read-error");
      await proxy.accept();
      await waitUntil("the group exists", async () => (await producer.group("g", { consumer: "x" }).info()) !== null);
      await producer.append(100);
      await waitUntil("entry 100 handled", () => got.includes(100));
      expect(got).toEqual([100]);
      expect(observer.events.filter((e) => e.type === "group-recreated")).toEqual([]);
    } finally {
      await consumer.stop();
      client.disconnect();
    }
  });
});
