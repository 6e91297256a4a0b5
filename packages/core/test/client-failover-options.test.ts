import {
  assertSafeClient,
  clientFailoverProblems,
  clientSafetyProblems,
  connect,
  safeClusterOptions,
  safeRedisOptions,
  safeSentinelOptions,
  validate,
} from "@coordis/core";
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";

const nodes = [{ host: "127.0.0.1", port: 1 }];

/** The `CoordisWarning`s of `code` emitted while `work` runs (and the turn after it). */
async function warningsDuring(code: string, work: () => void): Promise<Error[]> {
  const seen: Error[] = [];
  const listener = (w: Error) => void seen.push(w);
  process.on("warning", listener);
  try {
    work();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off("warning", listener);
  }
  return seen.filter((w) => (w as { code?: string }).code === code);
}

describe("client options that decide whether a client follows a failover, or reads what it wrote", () => {
  const opened: Array<Redis | Cluster> = [];
  afterEach(() => {
    for (const c of opened.splice(0)) c.disconnect();
  });
  function cluster(options: ClusterOptions): Cluster {
    const c = new Cluster(nodes, { lazyConnect: true, redisOptions: { ...safeRedisOptions }, ...options });
    opened.push(c);
    return c;
  }
  function sentinel(options: RedisOptions): Redis {
    const c = new Redis({ ...safeRedisOptions, sentinels: nodes, name: "mymaster", lazyConnect: true, ...options });
    opened.push(c);
    return c;
  }

  it("a Cluster without slotsRefreshInterval is named (it stays on a frozen master), warned about, not refused", async () => {
    const { slotsRefreshInterval: _, ...rest } = safeClusterOptions;
    const stays = cluster({ ...rest });
    expect(clientFailoverProblems(stays)).toEqual([expect.stringMatching(/slotsRefreshInterval/)]);
    // No call goes wrong (each fails by its timeout): not a safety problem, assertSafeClient accepts it.
    expect(clientSafetyProblems(stays)).toEqual([]);
    expect(() => assertSafeClient(stays)).not.toThrow();
    const warned = await warningsDuring("COORDIS_CLIENT_FAILOVER", () => {
      validate.redisClient("redis", stays);
      validate.redisClient("redis", stays);
    });
    expect(warned).toHaveLength(1);
    expect(warned[0]?.message).toMatch(/slotsRefreshInterval.*safeClusterOptions/);
    expect(clientFailoverProblems(cluster({ ...rest, slotsRefreshInterval: 0 }))).toHaveLength(1);
    expect(clientFailoverProblems(cluster({ ...safeClusterOptions }))).toEqual([]);
    const fromConnect = connect("redis+cluster://127.0.0.1:1", { clusterOptions: { lazyConnect: true } });
    opened.push(fromConnect as Cluster);
    expect(clientFailoverProblems(fromConnect)).toEqual([]);
  });

  it("a Sentinel client without failoverDetector is named and warned about; with safeSentinelOptions it is not", async () => {
    const stays = sentinel({});
    expect(clientFailoverProblems(stays)).toEqual([expect.stringMatching(/failoverDetector/)]);
    expect(clientSafetyProblems(stays)).toEqual([]);
    const warned = await warningsDuring("COORDIS_CLIENT_FAILOVER", () => validate.redisClient("redis", stays));
    expect(warned).toHaveLength(1);
    expect(warned[0]?.message).toMatch(/failoverDetector.*safeSentinelOptions/);
    expect(clientFailoverProblems(sentinel({ ...safeSentinelOptions }))).toEqual([]);
    // A client of one server has no failover to follow.
    const single = new Redis({ ...safeRedisOptions, lazyConnect: true });
    opened.push(single);
    expect(clientFailoverProblems(single)).toEqual([]);
    expect(await warningsDuring("COORDIS_CLIENT_FAILOVER", () => validate.redisClient("redis", single))).toEqual([]);
  });

  it("a Cluster that reads from replicas is a safety problem: a read right after a write can miss it", () => {
    for (const scaleReads of ["slave", "all"] as const) {
      const replicas = cluster({ ...safeClusterOptions, scaleReads });
      expect(clientSafetyProblems(replicas)).toEqual([expect.stringMatching(/scaleReads/)]);
      expect(() => assertSafeClient(replicas, "options.redis")).toThrow(/options\.redis.*scaleReads/);
    }
    expect(clientSafetyProblems(cluster({ ...safeClusterOptions, scaleReads: "master" }))).toEqual([]);
  });
});
