import {
  connect,
  coreScripts,
  InvalidArgumentError,
  parseRedisUrl,
  RedisUnavailableError,
  runScript,
  slotOf,
} from "@coordis/core";
import {
  recordObserver,
  socketsOpenedBy,
  startProxy,
  startRedis,
  startRedisCluster,
  startRedisSentinel,
} from "@coordis/testing";
import { Cluster, type Redis } from "ioredis";
import { describe, expect, inject, it, vi } from "vitest";

describe("parseRedisUrl", () => {
  it("parses every URL form", () => {
    expect(parseRedisUrl("redis://127.0.0.1:7000/3")).toMatchObject({
      kind: "standalone",
      tls: false,
      hosts: [{ host: "127.0.0.1", port: 7000 }],
      db: 3,
    });
    expect(parseRedisUrl("redis://localhost")).toMatchObject({ hosts: [{ host: "localhost", port: 6379 }] });
    expect(parseRedisUrl("redis://al%40ice:p%3Ass@[::1]:6380")).toMatchObject({
      username: "al@ice",
      password: "p:ss",
      hosts: [{ host: "::1", port: 6380 }],
    });
    expect(parseRedisUrl("redis://:only-password@h:1")).toMatchObject({ password: "only-password" });
    expect(parseRedisUrl("rediss://h:6380?tls_servername=example.org").tls).toBe(true);
    // Schemes are case-insensitive (RFC 3986 §3.1).
    expect(parseRedisUrl("REDIS://h:1")).toMatchObject({ kind: "standalone", tls: false });
    expect(parseRedisUrl("Rediss+Cluster://a:7000,b:7001")).toMatchObject({ kind: "cluster", tls: true });
    expect(parseRedisUrl("redis+cluster://a:7000,b:7001")).toMatchObject({
      kind: "cluster",
      hosts: [
        { host: "a", port: 7000 },
        { host: "b", port: 7001 },
      ],
    });
    expect(parseRedisUrl("redis+sentinel://s1,s2:26380/mymaster/2")).toMatchObject({
      kind: "sentinel",
      masterName: "mymaster",
      db: 2,
      hosts: [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26380 },
      ],
    });
  });

  it.each([
    ["", /non-empty/],
    ["localhost:6379", /scheme:\/\/host/],
    ["http://localhost:6379", /unsupported scheme "http:"/],
    ["redis://h:99999", /out of range/],
    ["redis://a:1,b:2", /takes one host/],
    ["redis://h:1/abc", /database "abc" is not a number/],
    ["redis://h:1/0/1", /path is the database/],
    ["redis+cluster://a:1/0", /only has database 0/],
    ["redis+sentinel://a:1", /needs the master name/],
    ["redis+cluster://a:1,,b:2", /empty entry/],
    ["redis://h:1?color=blue", /unknown query parameter "color"/],
    ["redis://h:1?tls_ca=/x", /need a TLS scheme/],
    ["redis://u:%zz@h:1", /password is not valid percent-encoding/],
    ["redis://h:1#frag", /fragment/],
    ["redis://h:1?command_timeout_ms=soon", /whole number of milliseconds/],
    ["redis://h:1?command_timeout_ms=0", /command_timeout_ms must be between 1 and 600000 ms, got 0/],
    ["redis://h:1?connect_timeout_ms=99999999999999999999", /connect_timeout_ms must be between 1 and 600000 ms/],
  ])("rejects %j with InvalidArgumentError", (url, message) => {
    let error: unknown;
    try {
      connect(url);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).argument).toBe("url");
    expect((error as Error).message).toMatch(message);
  });

  it("rejects an unreadable tls_ca file before opening anything", () => {
    expect(() => connect("rediss://h:1?tls_ca=/nonexistent/ca.pem")).toThrow(/tls_ca file "\/nonexistent\/ca.pem"/);
  });
});

describe("connect options", () => {
  it("an unknown or misspelt option is rejected naming it, before anything is opened", async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      // `commandTimeout` for `commandTimeoutMs`: silently ignored, the client would keep the 2 s default.
      [{ commandTimeout: 100 }, "options.commandTimeout", /unknown option \(known: commandTimeoutMs, /],
      [{ connectTimeout: 100 }, "options.connectTimeout", /unknown option/],
      [{ lazyConnect: true }, "options.lazyConnect", /unknown option/],
      [{ observer: { onEvent: "log" } }, "options.observer.onEvent", /expected a function/],
      [{ observer: 5 }, "options.observer", /expected an observer object/],
    ];
    for (const [options, argument, message] of cases) {
      let error: unknown;
      const opened = await socketsOpenedBy(async () => {
        try {
          connect("redis://127.0.0.1:1", options as never);
        } catch (err) {
          error = err;
        }
      });
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe(argument);
      expect((error as Error).message).toMatch(message);
      expect(opened).toEqual([]);
    }
  });
});

describe("connect against real servers", () => {
  it("defaults to redis://127.0.0.1:6379 with a command timeout", () => {
    const client = connect(undefined, { redisOptions: { lazyConnect: true } }) as Redis;
    expect(client.options.host).toBe("127.0.0.1");
    expect(client.options.port).toBe(6379);
    expect(client.options.commandTimeout).toBe(2_000);
    client.disconnect();
  });

  it("connects to a standalone server with ACL user, password and database from the URL", async () => {
    const server = await startRedis({
      config: { user: ["alice", "on", ">s3cret", "~*", "&*", "+@all"] },
    });
    const client = connect(`redis://alice:s3cret@127.0.0.1:${server.port}/2?client_name=coordis-test`) as Redis;
    try {
      await client.set("k", "v");
      expect(await client.get("k")).toBe("v");
      const info = (await client.client("INFO")) as string;
      expect(info).toMatch(/ db=2 /);
      expect(info).toMatch(/ user=alice /);
      expect(info).toMatch(/ name=coordis-test /);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });

  it("connects over TLS with a throwaway CA given as tls_ca", async () => {
    const server = await startRedis({ tls: true });
    try {
      expect(server.url).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+\?tls_ca=/);
      const client = connect(server.url);
      expect(await client.set("secure", "yes")).toBe("OK");
      expect(await client.get("secure")).toBe("yes");
      client.disconnect();
      // Without the CA the certificate is not trusted: the client never becomes ready.
      const untrusted = connect(`rediss://127.0.0.1:${server.port}`, { commandTimeoutMs: 500 });
      await expect(untrusted.ping()).rejects.toThrow();
      untrusted.disconnect();
    } finally {
      await server.stop();
    }
  });

  it("connects to a real cluster from redis+cluster://", async () => {
    const client = connect(inject("coordisClusterUrl"));
    try {
      expect(client).toBeInstanceOf(Cluster);
      // Keys under coordis:* (the shared cluster's ACL user may touch nothing else), on many slots.
      for (let i = 0; i < 20; i++) await client.set(`coordis:connect-test-${i}`, String(i));
      const values = await Promise.all(Array.from({ length: 20 }, (_, i) => client.get(`coordis:connect-test-${i}`)));
      expect(values).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    } finally {
      client.disconnect();
    }
  });

  it("connects through Sentinel to the monitored master from redis+sentinel://", async () => {
    const setup = await startRedisSentinel();
    const client = connect(`${setup.url}/1`) as Redis;
    try {
      await client.set("via-sentinel", "1");
      const direct = setup.master.client() as Redis;
      await direct.select(1);
      expect(await direct.get("via-sentinel")).toBe("1");
    } finally {
      client.disconnect();
      await setup.stop();
    }
  });

  it("never re-sends a command whose connection died unanswered: it fails by timeout and does not run later", async () => {
    const server = await startRedis();
    const proxy = await startProxy({ target: server });
    const redis = connect(proxy.url, { commandTimeoutMs: 200 });
    const admin = server.client();
    try {
      await redis.ping();
      proxy.blackhole();
      await expect(redis.incr("unanswered")).rejects.toThrow(/timed out/i);
      // Healing resets the connection that swallowed the INCR; the client reconnects. A ping answered on the new
      // connection comes after anything ioredis would have re-sent there.
      proxy.heal();
      await vi.waitFor(() => redis.ping(), { timeout: 10_000, interval: 50 });
      expect(await admin.get("unanswered")).toBeNull();
    } finally {
      redis.disconnect();
      admin.disconnect();
      await proxy.close();
      await server.stop();
    }
  });

  it("a Cluster client never re-sends a command whose node connection closed unanswered: it does not run twice", async () => {
    const cluster = await startRedisCluster();
    const client = connect(cluster.url, { commandTimeoutMs: 2_000 }) as Cluster;
    const admin = cluster.adminClient();
    try {
      const key = "coordis:resend";
      await client.set(key, "0");
      const owner = client.slots[slotOf(key)]?.[0] as string;
      const server = cluster.nodes.find((n) => `${n.host}:${n.port}` === owner);
      const node = client.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === owner);
      expect(server).toBeDefined();
      expect(node).toBeDefined();
      // The owner is frozen; the INCR is written to its connection, which then closes before any answer: the
      // server still reads and runs the INCR when it resumes. A client that re-sends it runs it a second time.
      server?.pause();
      const incr = client.incr(key).then(
        (v) => v,
        (err: unknown) => err,
      );
      await new Promise((resolve) => setImmediate(resolve));
      (node as unknown as { stream: { destroy(): void } }).stream.destroy();
      server?.resume();
      const outcome = await incr;
      expect(outcome).toBeInstanceOf(Error);
      await vi.waitFor(async () => expect(await admin.get(key)).toBe("1"), { timeout: 5_000, interval: 50 });
      // Answered again, and still once: nothing was re-sent meanwhile.
      expect(await client.get(key)).toBe("1");
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  });

  it("a database the connection cannot select is never replaced by database 0: calls fail, the observer hears why", async () => {
    const server = await startRedis({
      config: { user: ["carol", "on", ">pw", "~*", "&*", "+@all", "-select"] },
    });
    const admin = server.client();
    try {
      const cases: Array<[string, RegExp]> = [
        [`redis://127.0.0.1:${server.port}/99`, /DB index is out of range/], // the server has 16 databases
        [`redis://carol:pw@127.0.0.1:${server.port}/3`, /NOPERM/], // a user not allowed SELECT
      ];
      for (const [url, reason] of cases) {
        const observer = recordObserver();
        const client = connect(url, { observer, commandTimeoutMs: 500 });
        try {
          const key = `{db-test}:${reason.source}`;
          const err = await runScript(client, coreScripts.probe, [`${key}:v`, `${key}:c`], ["x", 60_000]).catch(
            (e: unknown) => e,
          );
          expect(err, url).toBeInstanceOf(RedisUnavailableError);
          const event = await observer.waitForEvent((e) => reason.test(e.error?.message ?? ""), {
            what: `a connection-error event matching ${reason}`,
          });
          expect(event.type).toBe("connection-error");
          // Nothing ran in database 0 instead.
          expect(await admin.exists(`${key}:v`, `${key}:c`)).toBe(0);
        } finally {
          client.disconnect();
        }
      }
    } finally {
      await server.stop();
    }
  });

  it("reports connection errors to the observer instead of printing them", async () => {
    const server = await startRedis();
    const url = server.url;
    await server.stop();
    const observer = recordObserver();
    const client = connect(url, { observer });
    const first = await observer.waitForEvent(() => true, { what: "a connection-error event", timeoutMs: 5_000 });
    client.disconnect();
    expect(first).toMatchObject({ primitive: "connection", type: "connection-error" });
    expect(first.error?.message).toMatch(/ECONNREFUSED/);
  });
});
