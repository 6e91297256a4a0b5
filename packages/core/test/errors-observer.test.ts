import {
  CoordisError,
  combineObservers,
  connect,
  InvalidArgumentError,
  notifyEvent,
  notifyOperation,
  type OperationEvent,
  parseVersion,
  RedisUnavailableError,
  ScriptError,
  serverAtLeast,
  serverInfo,
  toCoordisError,
} from "@coordis/core";
import { freePort, startRedis, testPrefix } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";

describe("errors", () => {
  it("every error extends CoordisError with a stable code", () => {
    const cases: Array<[CoordisError, string]> = [
      [new InvalidArgumentError("ttlMs", "bad"), "ERR_INVALID_ARGUMENT"],
      [new RedisUnavailableError("down"), "ERR_REDIS_UNAVAILABLE"],
      [new ScriptError("lock/acquire", "ERR boom"), "ERR_SCRIPT"],
    ];
    for (const [err, code] of cases) {
      expect(err).toBeInstanceOf(CoordisError);
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe(code);
      expect(err.name).toBe(err.constructor.name);
    }
  });

  it("classifies Redis failures: connectivity → RedisUnavailableError, replies → ScriptError", () => {
    for (const msg of [
      "Connection is closed.",
      "Command timed out",
      "connect ECONNREFUSED 127.0.0.1:1",
      "CLUSTERDOWN The cluster is down",
      "LOADING Redis is loading",
    ]) {
      const err = toCoordisError(new Error(msg), "x/y");
      expect(err).toBeInstanceOf(RedisUnavailableError);
      expect((err as Error).cause).toBeInstanceOf(Error);
    }
    const reply = toCoordisError(new Error("NOPERM this user has no permissions"), "x/y");
    expect(reply).toBeInstanceOf(ScriptError);
    expect((reply as ScriptError).redisMessage).toMatch(/NOPERM/);
    const passthrough = new InvalidArgumentError("a", "b");
    expect(toCoordisError(passthrough)).toBe(passthrough);
  });

  it("a server's 'not serving' codes count only as an error reply's leading code, not inside another error's text", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    const stream = `${testPrefix()}:errors-stream`;
    try {
      // Real replies of a script whose error text names something holding those words (a board, a key).
      for (const text of [
        "APP_CLOSED board LOADING-2026",
        "APP_CLOSED key BUSY x",
        "ERR no such group CLUSTERDOWN",
        "APP_X MASTERDOWN TRYAGAIN",
      ]) {
        const err = await redis.eval(`return redis.error_reply('${text}')`, 0).then(
          () => undefined,
          (e: unknown) => e,
        );
        const mapped = toCoordisError(err, "x/y");
        expect(mapped, text).toBeInstanceOf(ScriptError);
        expect((mapped as ScriptError).redisMessage, text).toContain(text);
      }
      // A real BUSYGROUP reply is the caller's error, not an unavailable server.
      await redis.xgroup("CREATE", stream, "g", "$", "MKSTREAM");
      const busyGroup = await redis.xgroup("CREATE", stream, "g", "$").then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(toCoordisError(busyGroup)).toBeInstanceOf(ScriptError);
      await redis.del(stream);
    } finally {
      redis.disconnect();
    }
    for (const text of [
      "BUSY Redis is busy running a script.",
      "TRYAGAIN Multiple keys request",
      "MASTERDOWN Link down",
    ]) {
      expect(toCoordisError(new Error(text)), text).toBeInstanceOf(RedisUnavailableError);
    }
  });

  it("a write refused by a demoted primary (READONLY) or for want of replicas (NOREPLICAS) is RedisUnavailableError", async () => {
    const server = await startRedis();
    const redis = connect(server.url);
    const admin = server.adminClient();
    try {
      const key = `${testPrefix()}:w`;
      const refusal = () =>
        redis.set(key, "1").then(
          () => undefined,
          (e: unknown) => e,
        );
      await admin.config("SET", "min-replicas-to-write", "1");
      const noReplicas = await refusal();
      expect(String(noReplicas)).toMatch(/^ReplyError: NOREPLICAS/);
      expect(toCoordisError(noReplicas)).toBeInstanceOf(RedisUnavailableError);
      await admin.config("SET", "min-replicas-to-write", "0");
      // A primary turned into a replica (of a server that is not there): every write is refused until a failover
      // client finds the new primary.
      await admin.replicaof("127.0.0.1", String(await freePort()));
      const readOnly = await refusal();
      expect(String(readOnly)).toMatch(/^ReplyError: READONLY/);
      expect(toCoordisError(readOnly, "x/y")).toBeInstanceOf(RedisUnavailableError);
    } finally {
      redis.disconnect();
      admin.disconnect();
      await server.stop();
    }
  });

  it("an ioredis AbortError (a command given up without an answer) is RedisUnavailableError, not ScriptError", () => {
    // What ioredis rejects the unanswered rest of a part-answered pipeline with (redis-errors' AbortError).
    class AbortError extends Error {
      override get name() {
        return "AbortError";
      }
    }
    for (const err of [
      new AbortError("Command aborted due to connection close"),
      new AbortError("Cluster is ended."),
      new Error("Command aborted due to connection close"),
    ]) {
      const mapped = toCoordisError(err, "x/y");
      expect(mapped).toBeInstanceOf(RedisUnavailableError);
      expect(mapped.cause).toBe(err);
    }
  });
});

describe("observer", () => {
  it("delivers to every combined observer and swallows observer exceptions", () => {
    const seen: string[] = [];
    const observer = combineObservers(
      {
        onOperation: () => {
          throw new Error("observer bug");
        },
      },
      { onOperation: (e) => seen.push(`${e.primitive}.${e.op}:${e.outcome}`), onEvent: (e) => seen.push(e.type) },
    );
    const event: OperationEvent = { primitive: "lock", op: "acquire", outcome: "acquired", durationMs: 1 };
    expect(() => notifyOperation(observer, event)).not.toThrow();
    notifyEvent(observer, { primitive: "lock", type: "lease-lost" });
    notifyOperation(undefined, event);
    expect(seen).toEqual(["lock.acquire:acquired", "lease-lost"]);
  });
});

describe("server info", () => {
  it("reads the server version once per client and compares versions", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    try {
      const info = await serverInfo(redis);
      expect(info.version).toMatch(/^\d+\.\d+\.\d+$/);
      expect(info.versionParts[0]).toBeGreaterThanOrEqual(7);
      expect(info.mode).toBe("standalone");
      expect(serverInfo(redis)).toBe(serverInfo(redis));
      expect(await serverAtLeast(redis, "7.0.0")).toBe(true);
      expect(await serverAtLeast(redis, "99.0.0")).toBe(false);
      expect(await serverAtLeast(redis, info.version)).toBe(true);
      expect(parseVersion("7.2")).toEqual([7, 2, 0]);
    } finally {
      redis.disconnect();
    }
  });

  it("reports cluster mode on a cluster client", async () => {
    const redis = connect(inject("coordisClusterUrl"));
    try {
      expect((await serverInfo(redis)).mode).toBe("cluster");
    } finally {
      redis.disconnect();
    }
  });
});

describe("toCoordisError of an error whose fields cannot be read", () => {
  it("maps it instead of throwing what its getter throws", () => {
    const unreadable = new Error("hidden");
    Object.defineProperty(unreadable, "message", {
      get() {
        throw new Error("message getter");
      },
    });
    const mapped = toCoordisError(unreadable, "x/y");
    expect(mapped).toBeInstanceOf(ScriptError);
    expect(mapped.message).toBe('Redis script "x/y" failed: an error whose message cannot be read');
    expect(mapped.cause).toBe(unreadable);

    const closed = new Proxy(new Error("Connection is closed."), {
      get(target, key) {
        if (key === "name") throw new Error("name getter");
        return Reflect.get(target, key);
      },
    });
    expect(toCoordisError(closed)).toBeInstanceOf(RedisUnavailableError);
  });
});
