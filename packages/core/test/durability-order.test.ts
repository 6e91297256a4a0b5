import { createHash } from "node:crypto";
import {
  connect,
  defineScript,
  parseDurability,
  type RedisClient,
  runScript,
  runScriptDurable,
  serverInfo,
} from "@coordis/core";
import { type RedisCluster, type RedisServer, startRedis, startRedisCluster, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** Two scripts that append their argument to a list: which ran first shows in the list. */
function appenders(label: string) {
  const make = (name: string) => {
    const source = `-- ${label} ${name}\nreturn redis.call('RPUSH', KEYS[1], ARGV[1])`;
    const sha1 = createHash("sha1").update(source).digest("hex");
    return defineScript<["list"], ["value"], number>({
      name: `test/${name}`,
      keys: ["list"],
      args: ["value"],
      source,
      sha1,
    });
  };
  return { lost: make("lost"), cached: make("cached") };
}

// WAIT 0 answers at once: the durable call's wait is no part of what is tested here, its place in the order is.
const durability = parseDurability("durability", { replicas: 0, aof: "if-supported", timeoutMs: 100 });

describe("durable script calls keep issue order with the other script calls of their client", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a call made after a durable first call of a script the server lacks does not run before it", async () => {
    const s = appenders("standalone-1");
    const admin = server.client();
    await admin.script("LOAD", s.cached.source); // another client loaded it; nobody loaded `lost`
    const redis = connect(server.url);
    try {
      await serverInfo(redis); // a client in use: its durability feature check is done
      const list = `${prefix}:order-1`;
      const first = runScriptDurable(redis, s.lost, [list], ["first"], durability);
      const second = runScript(redis, s.cached, [list], ["second"]);
      await Promise.all([first, second]);
      expect(await admin.lrange(list, 0, -1)).toEqual(["first", "second"]);
    } finally {
      redis.disconnect();
    }
  });

  it("a durable call made while a first call is being retried does not overtake it", async () => {
    const s = appenders("standalone-2");
    const admin = server.client();
    await admin.script("LOAD", s.cached.source);
    const redis = connect(server.url);
    try {
      await serverInfo(redis); // a client in use: its durability feature check is done
      const list = `${prefix}:order-2`;
      const first = runScript(redis, s.lost, [list], ["first"]);
      const second = runScriptDurable(redis, s.cached, [list], ["second"], durability);
      await Promise.all([first, second]);
      expect(await admin.lrange(list, 0, -1)).toEqual(["first", "second"]);
    } finally {
      redis.disconnect();
    }
  });
});

describe("durable script calls keep issue order on a Cluster (cluster of its own)", () => {
  let cluster: RedisCluster;
  let redis: RedisClient;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    redis = connect(cluster.url);
    await serverInfo(redis);
  });
  afterAll(async () => {
    redis.disconnect();
    await cluster.stop();
  });

  it("a call made after a durable first call of a script the node lacks does not run before it, and the reverse", async () => {
    const s = appenders("cluster");
    for (const node of cluster.nodes) await node.client().script("LOAD", s.cached.source);
    const list = `${prefix}:{order-cluster}`;
    const first = runScriptDurable(redis, s.lost, [list], ["first"], durability);
    const second = runScript(redis, s.cached, [list], ["second"]);
    await Promise.all([first, second]);
    const list2 = `${prefix}:{order-cluster-2}`;
    const s2 = appenders("cluster-2");
    for (const node of cluster.nodes) await node.client().script("LOAD", s2.cached.source);
    const third = runScript(redis, s2.lost, [list2], ["first"]);
    const fourth = runScriptDurable(redis, s2.cached, [list2], ["second"], durability);
    await Promise.all([third, fourth]);
    const admin = cluster.adminClient();
    expect(await admin.lrange(list, 0, -1)).toEqual(["first", "second"]);
    expect(await admin.lrange(list2, 0, -1)).toEqual(["first", "second"]);
  });
});
