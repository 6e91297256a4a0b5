import { connect } from "@coordis/core";
import { startRedisSentinel } from "@coordis/testing";
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
