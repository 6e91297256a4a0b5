import { connect, coreScripts, parseRedisUrl, runScript, ScriptError } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

// A redis:// URL naming one node of a Redis Cluster (a common slip: the cluster's address copied from a dashboard).
// The node answers MOVED for the slots it does not serve, which only a Cluster client follows: the caller got
// `Redis script "..." failed: MOVED 15495 127.0.0.1:33503`, which does not say what is wrong or what to do.
describe("a standalone client pointed at a Redis Cluster node", () => {
  it("fails with a ScriptError that keeps Redis' reply and says to connect as a Cluster client", async () => {
    const clusterUrl = inject("coordisClusterUrl");
    expect(clusterUrl).not.toBe("");
    const { hosts, username = "", password } = parseRedisUrl(clusterUrl);
    const auth = password === undefined ? "" : `${encodeURIComponent(username)}:${encodeURIComponent(password)}@`;
    const client = connect(`redis://${auth}${hosts[0]?.host}:${hosts[0]?.port}`);
    try {
      // Some of these tags are served by another node than the one the URL names.
      const results = await Promise.allSettled(
        ["a", "b", "c", "d", "e", "f", "g", "h"].map((tag) =>
          runScript(client, coreScripts.probe, [`${prefix}:{${tag}}:v`, `${prefix}:{${tag}}:c`], ["x", 1_000]),
        ),
      );
      const moved = results.find((r) => r.status === "rejected")?.reason as ScriptError;
      expect(moved).toBeInstanceOf(ScriptError);
      expect(moved.redisMessage).toMatch(/^MOVED \d+ \S+$/);
      expect(moved.message).toMatch(/not a Cluster client: connect with redis\+cluster:\/\//);
    } finally {
      client.disconnect();
    }
  });
});
