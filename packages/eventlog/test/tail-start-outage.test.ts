import { type CoordisEvent, connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { type Entry, EventLog } from "@coordis/eventlog";
import {
  type FaultProxy,
  type RedisServer,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
  withDeadline,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("eltailstart");

// A replica that boots while Redis fails over starts its tails during the outage. A tail retries its reads while
// Redis cannot be reached once it runs; where it starts (the cursor's entry, the log's head) is read the same way:
// the tail waits for Redis, reporting `tail-error`, instead of ending with RedisUnavailableError.
describe("a tail started while Redis cannot be reached", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let direct: RedisClient;
  let viaProxy: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    proxy = await startProxy({ target: server });
    direct = connect(server.url);
    viaProxy = connect(proxy.url, { redisOptions: { commandTimeout: 500 } });
    await viaProxy.ping();
  });
  /** Whether a client is blocked in XREAD on the server (this file's tails are its only blocking readers). */
  const blockedInXread = async (): Promise<boolean> =>
    ((await direct.client("LIST")) as string)
      .split("\n")
      .some((line) => / cmd=xread /.test(line) && / flags=\S*b/.test(line));
  afterAll(async () => {
    viaProxy.disconnect();
    direct.disconnect();
    await proxy.close();
    await server.stop();
  });

  it.each([
    ["after an entry (cursor)", "cursor"],
    ["from the end", "end"],
  ] as const)(
    "%s: waits for Redis, reports tail-error, then reads what follows",
    async (_label, kind) => {
      const name = `start-${kind}`;
      const events: CoordisEvent[] = [];
      const log = new EventLog<number>(viaProxy, name, { prefix, observer: { onEvent: (e) => events.push(e) } });
      const writer = new EventLog<number>(direct, name, { prefix });
      const first = await writer.append(1);
      const controller = new AbortController();
      proxy.blackhole();
      const from = kind === "cursor" ? first.id : "end";
      const tail = log.tail({ from, signal: controller.signal })[Symbol.asyncIterator]();
      const next: Promise<{ entry?: Entry<number>; err?: unknown }> = tail.next().then(
        (r) => ({ entry: r.done ? undefined : (r.value as Entry<number>) }),
        (err: unknown) => ({ err }),
      );
      try {
        const failures = () => events.filter((e) => e.type === "tail-error");
        await waitUntil("the tail's start to fail twice", () => failures().length >= 2, 20_000);
        expect(failures()[0]?.error).toBeInstanceOf(RedisUnavailableError);
        proxy.heal();
        // From the end: where the log ends once Redis answers. Its first blocking read shows that it has started.
        if (kind === "end") await waitUntil("the tail to block in XREAD", () => blockedInXread(), 20_000);
        const second = await writer.append(2);
        const got = await withDeadline(next, 20_000, "the tail's first entry");
        expect(got).not.toHaveProperty("err");
        expect(got.entry?.id).toBe(second.id);
        expect(got.entry?.data).toBe(2);
      } finally {
        if (proxy.stats().blackholed) proxy.heal();
        controller.abort();
        await tail.return?.();
      }
    },
    60_000,
  );

  it("on a client the app has closed, it fails at once with RedisUnavailableError (no outage to wait out)", async () => {
    const closed = connect(server.url);
    await closed.ping();
    await closed.quit();
    const events: CoordisEvent[] = [];
    const log = new EventLog<number>(closed, "start-closed", { prefix, observer: { onEvent: (e) => events.push(e) } });
    const next = log.tail({ from: "end" })[Symbol.asyncIterator]().next();
    await expect(withDeadline(next, 5_000, "the tail to fail")).rejects.toBeInstanceOf(RedisUnavailableError);
    expect(events.filter((e) => e.type === "tail-error")).toEqual([]);
  });

  it("aborting its signal during the outage ends it at once, without an error", async () => {
    const log = new EventLog<number>(viaProxy, "start-abort", { prefix });
    const controller = new AbortController();
    proxy.blackhole();
    try {
      const tail = log.tail({ from: "end", signal: controller.signal })[Symbol.asyncIterator]();
      const next = tail.next();
      controller.abort();
      await expect(withDeadline(next, 2_000, "the aborted tail to end")).resolves.toEqual({
        done: true,
        value: undefined,
      });
    } finally {
      proxy.heal();
    }
  });
});
