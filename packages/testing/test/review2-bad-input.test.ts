import { InvalidArgumentError } from "@coordis/core";
import { startRedis, startRedisCluster, startRedisGroup } from "@coordis/testing";
import { describe, expect, it } from "vitest";

async function rejectsNaming(start: () => Promise<unknown>, argument: string): Promise<void> {
  let caught: unknown;
  try {
    // Started after all (the bug): stopped at once so nothing is left behind.
    const started = (await start()) as { stop(): Promise<void> };
    await started.stop();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidArgumentError);
  expect((caught as InvalidArgumentError).argument).toBe(argument);
}

describe("bad input to the server starters is an InvalidArgumentError naming the argument, before anything starts", () => {
  it("startRedisGroup(n) needs an integer n ≥ 1", async () => {
    await rejectsNaming(() => startRedisGroup(0), "n");
    await rejectsNaming(() => startRedisGroup(1.5), "n");
    await rejectsNaming(() => startRedisGroup(Number.NaN), "n");
  });

  it("startRedisCluster checks masters, replicasPerMaster and its timeouts", async () => {
    await rejectsNaming(() => startRedisCluster({ masters: 2 }), "masters");
    await rejectsNaming(() => startRedisCluster({ replicasPerMaster: -1 as never }), "replicasPerMaster");
    await rejectsNaming(() => startRedisCluster({ replicasPerMaster: 2 as never }), "replicasPerMaster");
    await rejectsNaming(() => startRedisCluster({ replicasPerMaster: "1" as never }), "replicasPerMaster");
    await rejectsNaming(() => startRedisCluster({ nodeTimeoutMs: -1 }), "nodeTimeoutMs");
    await rejectsNaming(() => startRedisCluster({ readyTimeoutMs: Number.NaN }), "readyTimeoutMs");
  });

  it("startRedis checks port and startTimeoutMs", async () => {
    // Port 0 would make redis-server listen on no TCP port at all, with a URL naming port 0.
    await rejectsNaming(() => startRedis({ port: 0 }), "port");
    await rejectsNaming(() => startRedis({ port: 70_000 }), "port");
    await rejectsNaming(() => startRedis({ port: 6380.5 }), "port");
    await rejectsNaming(() => startRedis({ startTimeoutMs: -1 }), "startTimeoutMs");
    await rejectsNaming(() => startRedis({ startTimeoutMs: Number.NaN }), "startTimeoutMs");
  });
});
