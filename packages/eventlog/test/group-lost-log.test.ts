import { connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import {
  type FaultProxy,
  type RedisServer,
  recordObserver,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("elgrouplost");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

// A running consumer whose group vanished (the log lost: its keys deleted, or a Redis restart without persistence)
// creates the group again. Everything a stream recreated after the loss holds was appended after the consumer
// started, so the group is created from the start of the stream, whatever `startAt` said for a new group, and the
// re-creation is reported (event `group-recreated`).
describe("a consumer whose log was lost while it ran", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let direct: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    proxy = await startProxy({ target: server });
    direct = server.client();
    admin = server.adminClient();
  });
  afterAll(async () => {
    await proxy.close();
    await server.stop();
  });

  for (const startAt of ["start", "end"] as const) {
    it(`startAt "${startAt}": entries appended before the group is created again are delivered, and the loss is reported`, async () => {
      const client = connect(proxy.url);
      client.on("error", () => {});
      const observer = recordObserver();
      const logName = name(`lost-${startAt}`);
      const producer = new EventLog<number>(direct, logName, { prefix });
      const group = new EventLog<number>(client, logName, { prefix, observer }).group("g", {
        consumer: "c1",
        startAt,
      });
      const got: number[] = [];
      const consumer = group.consume((e) => void got.push(e.data), { blockMs: 100, claimIntervalMs: 100 });
      try {
        await waitUntil("the group exists", async () => (await producer.group("g", { consumer: "x" }).info()) !== null);
        await producer.append(1);
        await waitUntil("entry 1 handled", () => got.length === 1);

        // The consumer cannot reach Redis while the log is lost and refilled: it creates its group again only after.
        proxy.blackhole();
        await admin.del(producer.keys.stream, producer.keys.meta);
        await producer.append(2);
        await producer.append(3);
        proxy.heal();
        await waitUntil(
          "the group exists again",
          async () => (await producer.group("g", { consumer: "x" }).info()) !== null,
          10_000,
        );
        await producer.append(4);
        await waitUntil("entry 4 handled", () => got.includes(4), 10_000);
      } finally {
        await consumer.stop();
        client.disconnect();
      }
      expect(got).toEqual([1, 2, 3, 4]);
      const recreated = observer.events.filter((e) => e.type === "group-recreated");
      expect(recreated).toHaveLength(1);
      expect(recreated[0]).toMatchObject({ primitive: "eventlog", name: logName, attributes: { group: "g" } });
    });
  }

  it("a group destroyed while its stream is kept is created again from the start: kept entries are delivered again", async () => {
    const observer = recordObserver();
    const logName = name("destroyed");
    const producer = new EventLog<number>(direct, logName, { prefix });
    const group = new EventLog<number>(direct, logName, { prefix, observer }).group("g", {
      consumer: "c1",
      startAt: "end",
    });
    const got: number[] = [];
    const consumer = group.consume((e) => void got.push(e.data), { blockMs: 100, claimIntervalMs: 100 });
    try {
      await waitUntil("the group exists", async () => (await producer.group("g", { consumer: "x" }).info()) !== null);
      await producer.append(1);
      await producer.append(2);
      await waitUntil("entries 1 and 2 handled", () => got.length === 2);
      await admin.xgroup("DESTROY", producer.keys.stream, "g");
      await waitUntil(
        "the group exists again",
        async () => (await producer.group("g", { consumer: "x" }).info()) !== null,
      );
      await producer.append(3);
      await waitUntil("entry 3 handled", () => got.includes(3), 10_000);
    } finally {
      await consumer.stop();
    }
    expect(got).toEqual([1, 2, 1, 2, 3]);
    expect(observer.events.filter((e) => e.type === "group-recreated")).toHaveLength(1);
  });
});
