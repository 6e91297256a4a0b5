import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type OverflowInfo, PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import {
  countCommands,
  EventRecorder,
  type RedisServer,
  recordObserver,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
const workerFile = fileURLToPath(new URL("./fixtures/echo-worker.ts", import.meta.url));

describe("PubSub on the shared standalone server", () => {
  let redis: RedisClient;
  /**
   * Unrestricted: Redis grants a PSUBSCRIBE pattern only when the ACL lists that exact pattern, which this file's
   * random prefix cannot be (test/security/acl.test.ts proves patterns with the documented extra rule).
   */
  let admin: RedisClient;
  const buses: PubSub[] = [];
  const bus = (options: ConstructorParameters<typeof PubSub>[1] = {}, client?: RedisClient) => {
    const b = new PubSub(client ?? redis, { prefix, ...options });
    buses.push(b);
    return b;
  };
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisAdminRedisUrl"));
  });
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
    redis.disconnect();
    admin.disconnect();
  });

  it("delivers typed messages to every handler of a channel and counts receivers", async () => {
    const b = bus();
    const a: unknown[] = [];
    const c: unknown[] = [];
    await b.subscribe<{ n: number }>("orders", (m, meta) => {
      a.push([m.n, meta.channel]);
    });
    await b.subscribe("orders", (m) => {
      c.push(m);
    });
    // One subscriber connection, one Redis subscription for two handlers.
    expect(await b.publish("orders", { n: 1 })).toBe(1);
    await b.publish("orders", { n: 2 });
    await waitUntil("both handlers", () => a.length === 2 && c.length === 2);
    expect(a).toEqual([
      [1, "orders"],
      [2, "orders"],
    ]);
    expect(c).toEqual([{ n: 1 }, { n: 2 }]);
    expect(b.stats()).toMatchObject({ subscriptions: 2, channels: 1 });
  });

  it("unsubscribe removes one handler, and the Redis subscription with the last one", async () => {
    const b = bus();
    const got: number[] = [];
    const off1 = await b.subscribe<number>("unsub", (m) => {
      got.push(m);
    });
    const off2 = await b.subscribe<number>("unsub", () => {});
    await off2();
    await off2(); // idempotent
    expect(await b.publish("unsub", 1)).toBe(1);
    await waitUntil("message 1", () => got.length === 1);
    await off1();
    expect(await b.publish("unsub", 2)).toBe(0);
    expect(b.stats()).toMatchObject({ subscriptions: 0, channels: 0 });
  });

  it("an unsubscribe called twice at once: both calls resolve once Redis confirmed, not the second at once", async () => {
    const b = bus();
    const off = await b.subscribe("twice", () => {});
    const settled: string[] = [];
    const first = off().then(() => settled.push("first"));
    const second = off().then(() => settled.push("second"));
    await Promise.all([first, second]);
    expect(settled).toEqual(["first", "second"]);
    expect(await b.publish("twice", 1)).toBe(0);
  });

  it("subscribe() with a glob character subscribes to the pattern (the contract's subscribe(channel | pattern))", async () => {
    const b = bus({}, admin);
    const got: Array<[unknown, string, string | undefined]> = [];
    const off = await b.subscribe("jobs.*", (m, meta) => {
      got.push([m, meta.channel, meta.pattern]);
    });
    expect(b.stats()).toMatchObject({ channels: 0, patterns: 1 });
    await b.publish("jobs.a", 1);
    await b.publish("jobs", 2); // no match: the pattern needs the dot
    await b.publish("jobs.b", 3);
    await waitUntil("two pattern messages", () => got.length === 2);
    expect(got).toEqual([
      [1, "jobs.a", "jobs.*"],
      [3, "jobs.b", "jobs.*"],
    ]);
    await off();
    expect(b.stats()).toMatchObject({ subscriptions: 0, patterns: 0 });
  });

  it("pattern subscriptions see matching channels with the channel and pattern in meta", async () => {
    const b = bus({}, admin);
    const got: Array<[unknown, string, string | undefined]> = [];
    await b.psubscribe("audit.*", (m, meta) => {
      got.push([m, meta.channel, meta.pattern]);
    });
    await b.publish("audit.login", "a");
    await b.publish("other", "x");
    await b.publish("audit.logout", "b");
    await waitUntil("two pattern messages", () => got.length === 2);
    expect(got).toEqual([
      ["a", "audit.login", "audit.*"],
      ["b", "audit.logout", "audit.*"],
    ]);
  });

  it("a throwing handler affects neither the other handlers nor later messages", async () => {
    const b = bus();
    const errors: string[] = [];
    b.on("handler-error", (e) => errors.push(`${e.stage}:${e.error.message}`));
    const good: number[] = [];
    let calls = 0;
    await b.subscribe<number>("throwing", () => {
      calls++;
      throw new Error("boom");
    });
    await b.subscribe<number>("throwing", async (m) => {
      good.push(m);
    });
    for (let i = 0; i < 5; i++) await b.publish("throwing", i);
    await waitUntil("five good deliveries", () => good.length === 5 && calls === 5);
    expect(good).toEqual([0, 1, 2, 3, 4]);
    expect(errors).toEqual(Array(5).fill("handler:boom"));
    expect(b.stats().handlerErrors).toBe(5);
  });

  it("a slow handler's overflow is counted and reported while other handlers get everything", async () => {
    const observer = recordObserver();
    const b = bus({ queueLimit: 5, observer });
    const overflows = new EventRecorder<OverflowInfo>();
    b.on("overflow", overflows.record);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow: number[] = [];
    const fast: number[] = [];
    await b.subscribe<number>("slow", async (m) => {
      await gate;
      slow.push(m);
    });
    await b.subscribe<number>("slow", (m) => {
      fast.push(m);
    });
    for (let i = 0; i < 20; i++) await b.publish("slow", i);
    await waitUntil("fast handler", () => fast.length === 20);
    // Message 0 is running (blocked), 1..5 wait in the queue, 6..19 are dropped.
    await overflows.waitFor((o) => o.dropped === 14, { what: "14 overflows" });
    expect(overflows.items).toHaveLength(14);
    expect(overflows.items.at(-1)).toEqual({ channel: "slow", dropped: 14, queueLimit: 5 });
    expect(observer.events.filter((e) => e.type === "overflow")).toHaveLength(14);
    expect(b.stats().dropped).toBe(14);
    release();
    await waitUntil("slow handler catches up", () => slow.length === 6);
    expect(slow).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("a message the codec cannot decode is reported, the next one is delivered", async () => {
    const b = bus();
    const errors: string[] = [];
    b.on("handler-error", (e) => errors.push(e.stage));
    const got: unknown[] = [];
    await b.subscribe("decode", (m) => {
      got.push(m);
    });
    await redis.publish(`${prefix}:ps:decode`, "{not json");
    await b.publish("decode", { ok: true });
    await waitUntil("good message", () => got.length === 1);
    expect(errors).toEqual(["decode"]);
  });

  it("supports a pluggable codec", async () => {
    const codec = {
      encode: (v: unknown) => Buffer.from(String(v).split("").reverse().join("")),
      decode: (d: Buffer) => d.toString().split("").reverse().join(""),
    };
    const b = bus({ codec });
    const got: unknown[] = [];
    await b.subscribe("codec", (m) => {
      got.push(m);
    });
    await b.publish("codec", "hello");
    await waitUntil("decoded", () => got.length === 1);
    expect(got).toEqual(["hello"]);
    expect(await redis.publish(`${prefix}:ps:codec`, "olleh")).toBe(1);
    await waitUntil("raw", () => got.length === 2);
    expect(got[1]).toBe("hello");
  });

  it("two processes exchange messages", async () => {
    const b = bus();
    const replies: Array<{ n: number; pid: number }> = [];
    await b.subscribe<{ n: number; pid: number }>("pong", (m) => {
      replies.push(m);
    });
    const child: ChildProcess = spawn(
      process.execPath,
      ["--conditions=@coordis/source", "--import", "tsx", workerFile, inject("coordisRedisUrl"), prefix],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      let out = "";
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
      });
      await waitUntil("worker ready", () => out.includes("ready"), 20_000);
      for (let n = 1; n <= 10; n++) expect(await b.publish("ping", { n })).toBe(1);
      await waitUntil("10 replies", () => replies.length === 10);
      expect(replies.map((r) => r.n)).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
      expect(new Set(replies.map((r) => r.pid))).toEqual(new Set([child.pid]));
    } finally {
      child.kill("SIGTERM");
      if (child.exitCode === null) await once(child, "exit");
    }
  });

  it("close() stops delivery and later calls fail with ERR_PUBSUB_CLOSED", async () => {
    const b = bus();
    await b.subscribe("closing", () => {});
    await b.close();
    await b.close();
    await expect(b.publish("closing", 1)).rejects.toMatchObject({ code: "ERR_PUBSUB_CLOSED" });
    await waitUntil(
      "subscriber connection closed",
      async () => (await redis.publish(`${prefix}:ps:closing`, "1")) === 0,
    );
  });
});

describe("PubSub on a server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    // The restart test's pattern subscription needs its exact pattern granted (the documented extra rule).
    server = await startRedis({ leastPrivilege: { extraRules: [`&${prefix}:ps:restart-*`] } });
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("rejects bad input with InvalidArgumentError and sends no command", async () => {
    const b = new PubSub(redis, { prefix, maxMessageBytes: 1_000 });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const { result } = await countCommands(server, async () => {
      const attempts: Array<() => Promise<unknown>> = [
        () => b.publish("", 1),
        () => b.publish("has space", 1),
        () => b.publish("glob*", 1),
        () => b.publish("brace{x}", 1),
        () => b.publish("x".repeat(300), 1),
        () => b.publish(42 as never, 1),
        () => b.publish("ok", 10n),
        () => b.publish("ok", cyclic),
        () => b.publish("ok", undefined),
        () => b.publish("ok", "y".repeat(2_000)),
        () => b.subscribe("bad\nname", () => {}),
        () => b.subscribe("ok", "not a function" as never),
        () => b.psubscribe("with space*", () => {}),
      ];
      const errors: unknown[] = [];
      for (const attempt of attempts) {
        try {
          await attempt();
          errors.push(undefined);
        } catch (err) {
          errors.push(err);
        }
      }
      return errors;
    }).then((r) => {
      expect(r.roundTrips).toBe(0);
      return r;
    });
    for (const err of result) expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((result[6] as InvalidArgumentError).argument).toBe("message");
    expect((result[9] as InvalidArgumentError).message).toMatch(/maxMessageBytes/);
    expect(() => new PubSub(redis, { prefix: "bad prefix" })).toThrow(InvalidArgumentError);
    expect(() => new PubSub(redis, { queueLimit: 0 })).toThrow(InvalidArgumentError);
    await b.close();
  });

  it("publish is one round trip", async () => {
    const b = new PubSub(redis, { prefix });
    const { roundTrips, sent } = await countCommands(server, () => b.publish("one", { a: 1 }));
    expect(roundTrips).toBe(1);
    expect(sent).toEqual({ publish: 1 });
  });

  it("after a Redis restart it resubscribes, emits 'resubscribed' within 2 s and later messages arrive", async () => {
    const b = new PubSub(redis, { prefix });
    const resubscribed = new EventRecorder<ResubscribedInfo>();
    b.on("resubscribed", resubscribed.record);
    const got: number[] = [];
    const patternGot: number[] = [];
    await b.subscribe<number>("restart", (m) => {
      got.push(m);
    });
    await b.psubscribe<number>("restart-*", (m) => {
      patternGot.push(m);
    });
    await b.publish("restart", 1);
    await waitUntil("message before restart", () => got.length === 1);

    await server.restart();
    const restartedAt = Date.now();
    const info = await resubscribed.waitFor(() => true, { what: "'resubscribed'", timeoutMs: 2_000 });
    expect(Date.now() - restartedAt).toBeLessThan(2_000);
    expect(info).toMatchObject({ channels: 1, patterns: 1 });
    // The publishing client reconnects on its own; its command waits in the offline queue meanwhile.
    await waitUntil("publish after restart reaches the subscriber", async () => (await b.publish("restart", 2)) === 1);
    await b.publish("restart-p", 3);
    await waitUntil("messages after restart", () => got.includes(2) && patternGot.includes(3));
    expect(b.stats().resubscriptions).toBe(1);
    await b.close();
  });

  it("a 'resubscribed' listener that throws, or an async one that rejects, leaves no unhandled rejection, and delivery goes on", async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", record);
    try {
      const b = new PubSub(redis, { prefix });
      b.on("resubscribed", () => {
        throw new Error("listener bug");
      });
      // What the README suggests doing on 'resubscribed' (reload state) is naturally async, and can fail.
      let asyncListenerCalls = 0;
      b.on("resubscribed", async () => {
        asyncListenerCalls++;
        throw new Error("async listener bug");
      });
      const got: number[] = [];
      await b.subscribe<number>("restart-throwing", (m) => {
        got.push(m);
      });
      await server.restart();
      await waitUntil("resubscribed", () => b.stats().resubscriptions === 1, 5_000);
      await waitUntil("publish after restart reaches the subscriber", async () => {
        await b.publish("restart-throwing", 1);
        return got.includes(1);
      });
      await new Promise((r) => setImmediate(r));
      expect(asyncListenerCalls).toBe(1);
      expect(unhandled).toEqual([]);
      await b.close();
    } finally {
      process.off("unhandledRejection", record);
    }
  });
});

describe("PubSub on the 3-master cluster", () => {
  let cluster: RedisClient;
  /** Unrestricted, for pattern subscriptions (see the standalone block above). */
  let admin: RedisClient;
  const buses: PubSub[] = [];
  beforeAll(() => {
    cluster = connect(inject("coordisClusterUrl"));
    admin = connect(inject("coordisAdminClusterUrl"));
  });
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
    cluster.disconnect();
    admin.disconnect();
  });

  it("uses sharded pub/sub for channels on every shard", async () => {
    const b = new PubSub(cluster, { prefix });
    buses.push(b);
    expect(b.isSharded).toBe(true);
    const got = new Map<string, unknown[]>();
    const names = Array.from({ length: 12 }, (_, i) => `shard-${i}`);
    for (const name of names) {
      await b.subscribe(name, (m, meta) => {
        got.set(meta.channel, [...(got.get(meta.channel) ?? []), m]);
      });
    }
    for (const name of names) expect(await b.publish(name, { name })).toBe(1);
    await waitUntil("a message on every channel", () => names.every((n) => got.get(n)?.length === 1));
    for (const name of names) expect(got.get(name)).toEqual([{ name }]);
    await expect(b.psubscribe("shard-*", () => {})).rejects.toThrow(InvalidArgumentError);
    await expect(b.subscribe("shard-*", () => {})).rejects.toThrow(InvalidArgumentError);
  });

  it("sharded: false uses broadcast pub/sub, where patterns work", async () => {
    const b = new PubSub(admin, { prefix, sharded: false });
    buses.push(b);
    expect(b.isSharded).toBe(false);
    const got: unknown[] = [];
    await b.psubscribe("bcast.*", (m, meta) => {
      got.push([m, meta.channel]);
    });
    await b.publish("bcast.a", 1);
    await waitUntil("pattern message on the cluster", () => got.length === 1);
    expect(got).toEqual([[1, "bcast.a"]]);
  });
});
