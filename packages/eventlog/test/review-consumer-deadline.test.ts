import {
  type CoordisEvent,
  connect,
  FALLBACK_DEADLINE_MS,
  type RedisClient,
  RedisUnavailableError,
  safeRedisOptions,
} from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import {
  type FaultProxy,
  type RedisServer,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
  withDeadline,
} from "@coordis/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("eldeadline");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

/** Coordis' own deadline on a client without commandTimeout, plus room for the retry after it. */
const RECOVERY_MS = FALLBACK_DEADLINE_MS + 15_000;

// On a client created without commandTimeout, ioredis never times a command out: a command whose request or reply is
// lost (a partition; a connection reset, after which Coordis clients do not send it again) never settles. Coordis
// bounds every call it makes on such a client by its own deadline (FALLBACK_DEADLINE_MS), plain commands as well as
// scripts: a consumer whose XGROUP CREATE or XACK was lost goes on, and reads fail with RedisUnavailableError.
describe("calls on a client without commandTimeout whose request is lost", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let direct: RedisClient;
  const opened: RedisClient[] = [];
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    proxy = await startProxy({ target: server });
    direct = connect(server.url);
  });
  afterAll(async () => {
    direct.disconnect();
    for (const c of opened) c.disconnect();
    await proxy.close();
    await server.stop();
  });
  /**
   * A client of the user's through the proxy, with Coordis' settings but no command timeout (connect() always sets
   * one: a commandTimeout given as undefined counts as not given).
   */
  const untimed = async (): Promise<RedisClient> => {
    const { commandTimeout: _none, ...options } = safeRedisOptions;
    const c = new Redis(proxy.url, options);
    opened.push(c);
    await c.ping();
    return c;
  };
  /** Loses what is sent from now on: a partition, then the connections that lost bytes are reset. */
  const lose = async (what: string, send: () => void): Promise<void> => {
    const before = proxy.stats().bytesDiscarded;
    proxy.blackhole();
    send();
    await waitUntil(what, () => proxy.stats().bytesDiscarded > before, 5_000);
    proxy.heal();
  };

  it("a consumer whose XGROUP CREATE was lost goes on and handles entries", async () => {
    const redis = await untimed();
    const events: CoordisEvent[] = [];
    const log = new EventLog<number>(redis, name("create"), { prefix, observer: { onEvent: (e) => events.push(e) } });
    const handled: number[] = [];
    let consumer: ReturnType<ReturnType<typeof log.group>["consume"]> | undefined;
    try {
      await lose("the consumer's XGROUP CREATE to be sent", () => {
        consumer = log.group("g", { consumer: "c" }).consume((e) => {
          handled.push(e.data);
        });
      });
      await new EventLog<number>(direct, log.name, { prefix }).append(1);
      await waitUntil(`the entry to be handled (${handled.length})`, () => handled.length === 1, RECOVERY_MS);
      const error = events.find((e) => e.type === "consume-read-error")?.error;
      expect(error).toBeInstanceOf(RedisUnavailableError);
      // Failed by Coordis' deadline, or at once when the proxy reset the connection that lost it (a call in flight at
      // a close fails then): either way not left waiting forever.
      expect(error?.message).toMatch(/Coordis deadline|Connection is closed/);
    } finally {
      await consumer?.stop();
    }
  }, 60_000);

  it("an entry whose XACK was lost is delivered again and acknowledged, not held forever", async () => {
    const redis = await untimed();
    const log = new EventLog<number>(redis, name("ack"), { prefix });
    await log.group("g", { consumer: "setup" }).create();
    await log.append(1);
    let deliveries = 0;
    let release: (() => void) | undefined;
    const consumer = log.group("g", { consumer: "c" }).consume(
      (_e, { deliveries: d }) => {
        deliveries = d;
        // The first delivery waits for the test; the XACK after it is sent into the partition.
        if (d === 1) return new Promise<void>((r) => (release = r));
      },
      // No refresh is due before the partition heals: from then on the live consumer keeps the entry fresh while
      // it holds it, so only the end of the XACK lets it go idle and be claimed again.
      { claimIdleMs: 3_000, claimIntervalMs: 200 },
    );
    try {
      await waitUntil("the first delivery", () => release !== undefined, 5_000);
      await lose("the XACK to be sent", () => release?.());
      await waitUntil(
        `the entry to be acknowledged (deliveries ${deliveries}, acked ${consumer.stats().acked})`,
        () => consumer.stats().acked === 1,
        RECOVERY_MS,
      );
      expect(deliveries).toBe(2);
      expect(consumer.stats().acking).toBe(0);
      const [pending] = (await direct.xpending(log.keys.stream, "g")) as [number];
      expect(pending).toBe(0);
    } finally {
      await consumer.stop();
    }
  }, 60_000);

  it("read, length, head, deadLetters and group info fail with RedisUnavailableError; a tail's start is retried", async () => {
    const redis = await untimed();
    const failures: CoordisEvent[] = [];
    const log = new EventLog<number>(redis, name("reads"), {
      prefix,
      observer: { onEvent: (e) => e.type === "tail-error" && failures.push(e) },
    });
    const { id } = await log.append(1);
    const controller = new AbortController();
    const tail = log.tail({ from: id, signal: controller.signal })[Symbol.asyncIterator]();
    let calls: Promise<unknown>[] = [];
    let first: Promise<IteratorResult<unknown>> | undefined;
    try {
      await lose("the reads to be sent", () => {
        const sent: Promise<unknown>[] = [
          log.read(),
          log.length(),
          log.head(),
          log.deadLetters(),
          log.group("g", { consumer: "c" }).info(),
        ];
        calls = sent.map((call, i) => withDeadline(call, RECOVERY_MS, `call ${i} to settle`));
        first = tail.next();
      });
      const settled = await Promise.allSettled(calls);
      for (const s of settled) {
        expect(s.status).toBe("rejected");
        expect((s as PromiseRejectedResult).reason).toBeInstanceOf(RedisUnavailableError);
      }
      // The tail's lost start read ended at the deadline too, and was tried again: the tail reads what follows.
      await waitUntil("the tail's lost start read to be reported", () => failures.length > 0, RECOVERY_MS);
      expect(failures[0]?.error).toBeInstanceOf(RedisUnavailableError);
      const next = await log.append(2);
      const got = await withDeadline(first as Promise<IteratorResult<unknown>>, RECOVERY_MS, "the tail's entry");
      expect(got.done ? undefined : (got.value as { id: string }).id).toBe(next.id);
    } finally {
      controller.abort();
    }
  }, 90_000);
});
