import { aclRules, connect, InvalidArgumentError, type RedisClient, ScriptError } from "@coordis/core";
import { PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import {
  countCommands,
  EventRecorder,
  type FaultProxy,
  type RedisServer,
  recordObserver,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("PubSub contract checks (a least-privilege server of its own)", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    admin = server.adminClient();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });
  const subscribersOf = async (channel: string) => {
    const reply = (await admin.call("PUBSUB", "NUMSUB", `${prefix}:ps:${channel}`)) as [string, number];
    return Number(reply[1]);
  };

  it("bad names, handlers, clients and codec output of any type are an InvalidArgumentError, and nothing is sent", async () => {
    const b = new PubSub(redis, { prefix });
    const badCodec = new PubSub(redis, {
      prefix,
      codec: { encode: () => new Uint8Array([1]) as never, decode: (d) => d },
    });
    const throwingCodec = new PubSub(redis, {
      prefix,
      codec: {
        encode: () => {
          throw "not an Error"; // a codec may throw anything
        },
        decode: (d) => d,
      },
    });
    const fn = () => {};
    const attempts: Array<[string, () => unknown]> = [
      ["subscribe(number)", () => b.subscribe(42 as never, fn)],
      ["subscribe(null)", () => b.subscribe(null as never, fn)],
      ["subscribe(undefined)", () => b.subscribe(undefined as never, fn)],
      ["subscribe(object)", () => b.subscribe({ toString: () => "x" } as never, fn)],
      ["subscribe(lone surrogate)", () => b.subscribe("a\ud800", fn)],
      ["subscribe(no-break space)", () => b.subscribe("a\u00a0b", fn)],
      ["subscribe(line separator)", () => b.subscribe("a\u2028b", fn)],
      ["subscribe(] without glob)", () => b.subscribe("a]", fn)],
      ["subscribe(257 bytes)", () => b.subscribe("é".repeat(129), fn)],
      ["subscribe(pattern, no handler)", () => b.subscribe("a*", undefined as never)],
      ["psubscribe(number)", () => b.psubscribe(7 as never, fn)],
      ["psubscribe(brace)", () => b.psubscribe("a{*}", fn)],
      ["psubscribe(257 bytes)", () => b.psubscribe(`${"x".repeat(256)}*`, fn)],
      ["psubscribe(no handler)", () => b.psubscribe("a*", null as never)],
      ["publish(symbol)", () => b.publish("ok", Symbol("s"))],
      ["publish(function)", () => b.publish("ok", () => 1)],
      ["publish(codec returns Uint8Array)", () => badCodec.publish("ok", 1)],
      ["publish(codec throws a string)", () => throwingCodec.publish("ok", 1)],
      ["redisChannel(glob)", () => b.redisChannel("a*")],
      ["new PubSub(null)", () => new PubSub(null as never)],
      ["new PubSub({})", () => new PubSub({} as never)],
      ["new PubSub(redis, null)", () => new PubSub(redis, null as never)],
      ["new PubSub(redis, { codec: {} })", () => new PubSub(redis, { codec: {} as never })],
      ["new PubSub(redis, { queueLimit: 1.5 })", () => new PubSub(redis, { queueLimit: 1.5 })],
      ["new PubSub(redis, { maxMessageBytes: -1 })", () => new PubSub(redis, { maxMessageBytes: -1 })],
      ["new PubSub(redis, { sharded: 'no' })", () => new PubSub(redis, { sharded: "no" as never })],
    ];
    const { result, sent } = await countCommands(server, async () => {
      const outcomes: Array<[string, unknown]> = [];
      for (const [what, attempt] of attempts) {
        try {
          await attempt();
          outcomes.push([what, "no error"]);
        } catch (err) {
          outcomes.push([what, err]);
        }
      }
      return outcomes;
    });
    expect(sent).toEqual({});
    for (const [what, outcome] of result) expect(outcome, what).toBeInstanceOf(InvalidArgumentError);
    await Promise.all([b.close(), badCodec.close(), throwingCodec.close()]);
  });

  it("a pattern the ACL does not grant rejects with a typed error naming NOPERM; the other subscriptions go on", async () => {
    const b = new PubSub(redis, { prefix });
    const got: number[] = [];
    await b.subscribe<number>("granted", (m) => {
      got.push(m);
    });
    // A pattern must be granted literally (`&pattern`): this one is not.
    const err = await b.psubscribe("denied.*", () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScriptError);
    expect(String((err as Error).message)).toMatch(/NOPERM|permission/i);
    expect(b.stats()).toMatchObject({ subscriptions: 1, channels: 1, patterns: 0 });
    expect(await b.publish("granted", 1)).toBe(1);
    await waitUntil("the channel still delivers", () => got.includes(1));
    await b.close();
  });

  it("a channel the ACL takes away from a subscriber: the others are restored, the refused one is reported and comes back once granted", async () => {
    const keep = `${prefix}:ps:keep`;
    const revoke = `${prefix}:ps:revoke`;
    const user = `ps-${prefix.slice(-8)}`;
    await admin.call("ACL", "SETUSER", user, "reset", "on", ">pw", ...aclRules({ prefix }), "resetchannels");
    await admin.call("ACL", "SETUSER", user, `&${keep}`, `&${revoke}`);
    const client = connect(`redis://${user}:pw@${server.host}:${server.port}`);
    const observer = recordObserver();
    const b = new PubSub(client, { prefix, observer });
    const got: string[] = [];
    try {
      await b.subscribe<number>("keep", (m) => void got.push(`keep ${m}`));
      await b.subscribe<number>("revoke", (m) => void got.push(`revoke ${m}`));
      // Redis ends the connection of a subscriber that loses a channel; the resubscription is refused for it.
      await admin.call("ACL", "SETUSER", user, "resetchannels", `&${keep}`);
      await waitUntil("the refusal reported", () =>
        observer.events.some((e) => e.type === "resubscribe-failed" && e.attributes?.channel === revoke),
      );
      await waitUntil("the kept channel restored", () => observer.events.some((e) => e.type === "resubscribed"));
      expect(await subscribersOf("keep")).toBe(1);
      expect(await subscribersOf("revoke")).toBe(0);
      // Another handler of the refused channel is refused too (it resolved as though Redis had granted it).
      const late = await b.subscribe("revoke", () => {}).catch((e: unknown) => e);
      expect(late).toBeInstanceOf(ScriptError);
      expect(String((late as Error).message)).toMatch(/NOPERM|permission/i);
      expect(b.stats()).toMatchObject({ subscriptions: 2, channels: 2 });
      expect(await admin.publish(keep, "1")).toBe(1);
      await waitUntil("the kept channel delivers", () => got.includes("keep 1"));
      // Granted again: the refused channel is tried again and comes back without another disconnect.
      await admin.call("ACL", "SETUSER", user, `&${revoke}`);
      await waitUntil("the refused channel restored", async () => (await subscribersOf("revoke")) === 1, 10_000);
      expect(await admin.publish(revoke, "2")).toBe(1);
      await waitUntil("the refused channel delivers", () => got.includes("revoke 2"));
      expect(observer.events.filter((e) => e.type === "subscriber-disconnected")).toHaveLength(1);
    } finally {
      await b.close();
      client.disconnect();
      await admin.call("ACL", "DELUSER", user);
    }
  });

  it("after close(): every call rejects with ERR_PUBSUB_CLOSED, an old unsubscribe resolves, nothing is delivered", async () => {
    const b = new PubSub(redis, { prefix });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const got: number[] = [];
    let started = 0;
    const off = await b.subscribe<number>("closing", async (m) => {
      started++;
      await gate;
      got.push(m);
    });
    await b.publish("closing", 1); // runs, blocked
    await b.publish("closing", 2); // queued
    await waitUntil("the first message running and the second queued", () => started === 1 && b.stats().queued === 1);
    await b.close();
    await expect(b.subscribe("closing", () => {})).rejects.toMatchObject({ code: "ERR_PUBSUB_CLOSED" });
    await expect(b.psubscribe("closing*", () => {})).rejects.toMatchObject({ code: "ERR_PUBSUB_CLOSED" });
    await expect(b.publish("closing", 3)).rejects.toMatchObject({ code: "ERR_PUBSUB_CLOSED" });
    await expect(off()).resolves.toBeUndefined();
    release(); // the running handler finishes (not awaited by close); the queued message was dropped
    await waitUntil("the running handler finished", () => got.length === 1);
    expect(got).toEqual([1]);
    expect(started).toBe(1);
    expect(b.stats()).toMatchObject({ subscriptions: 0, queued: 0 });
    expect(await subscribersOf("closing")).toBe(0);
  });
});

describe("PubSub unsubscribing during an outage (fault proxy)", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    admin = server.adminClient();
    proxy = await startProxy({ target: server });
  });
  afterAll(async () => {
    await proxy.close();
    await server.stop();
  });

  it("a handler removed while Redis is unreachable is not subscribed again after the reconnect", async () => {
    const client = connect(proxy.url, { commandTimeoutMs: 300 });
    client.on("error", () => {});
    const observer = recordObserver();
    const b = new PubSub(client, { prefix, observer });
    const resubscribed = new EventRecorder<ResubscribedInfo>();
    b.on("resubscribed", resubscribed.record);
    const got: string[] = [];
    const offGone = await b.subscribe("gone", () => {
      got.push("gone");
    });
    await b.subscribe("kept", () => {
      got.push("kept");
    });
    proxy.refuse();
    proxy.dropConnections();
    await waitUntil("the loss noticed", () => observer.events.some((e) => e.type === "subscriber-disconnected"));
    await offGone(); // its UNSUBSCRIBE cannot be confirmed now: it resolves anyway (the timeout is swallowed)
    expect(b.stats()).toMatchObject({ subscriptions: 1, channels: 1 });
    await proxy.accept();
    const info = await resubscribed.waitFor(() => true, { what: "'resubscribed'" });
    expect(info).toMatchObject({ channels: 1, patterns: 0 });
    const numsub = async (channel: string) =>
      Number(((await admin.call("PUBSUB", "NUMSUB", `${prefix}:ps:${channel}`)) as [string, number])[1]);
    expect(await numsub("gone")).toBe(0);
    expect(await numsub("kept")).toBe(1);
    await b.publish("gone", 1);
    await b.publish("kept", 2);
    await waitUntil("the kept channel delivers", () => got.includes("kept"));
    expect(got).toEqual(["kept"]);
    await b.close();
    client.disconnect();
  });
});
