import { connect } from "@coordis/core";
import { freePort, startRedis, startRedisSentinel, waitForReplicas } from "@coordis/testing";
import { describe, expect, it } from "vitest";

describe("startRedisSentinel with the data servers' config", () => {
  it("min-replicas-to-write above the replicas it has: the setup is handed out, then the master refuses writes", async () => {
    const setup = await startRedisSentinel({ replicas: 1, config: { "min-replicas-to-write": 2 } });
    const admin = connect(setup.master.adminUrl, { commandTimeoutMs: 5_000 });
    try {
      expect(await admin.call("CONFIG", "GET", "min-replicas-to-write")).toEqual(["min-replicas-to-write", "2"]);
      await expect(admin.set("k", "v")).rejects.toThrow(/NOREPLICAS/);
      // The replica got the setting from its start: promoted, it asks the same.
      const replica = connect(setup.replicas[0]?.adminUrl as string, { commandTimeoutMs: 5_000 });
      expect(await replica.call("CONFIG", "GET", "min-replicas-to-write")).toEqual(["min-replicas-to-write", "2"]);
      replica.disconnect();
    } finally {
      admin.disconnect();
      await setup.stop();
    }
  });
});

describe("waitForReplicas", () => {
  it("returns once the replica streams: a write right after is acknowledged by WAIT at once", async () => {
    const master = await startRedis({ config: { "repl-diskless-sync-delay": 0 } });
    const replica = await startRedis({ extraArgs: ["--replicaof", master.host, String(master.port)] });
    const admin = connect(master.adminUrl, { commandTimeoutMs: 5_000 });
    try {
      await waitForReplicas(master, [replica]);
      await admin.set("k", "v");
      expect(await admin.wait(1, 200)).toBe(1);
    } finally {
      admin.disconnect();
      await replica.stop();
      await master.stop();
    }
  });

  it("throws after its timeout when a replica's master is not there", async () => {
    const port = await freePort();
    const master = await startRedis();
    const replica = await startRedis({ extraArgs: ["--replicaof", "127.0.0.1", String(port)] });
    try {
      await expect(waitForReplicas(master, [replica], { timeoutMs: 300 })).rejects.toThrow(
        `replica on port ${replica.port} did not sync within`,
      );
    } finally {
      await replica.stop();
      await master.stop();
    }
  });
});
