import {
  connect,
  coreScripts,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  safeRedisOptions,
} from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("inflight-close");
/** Far longer than the test may take: a call that fails only at its command timeout fails the test. */
const COMMAND_TIMEOUT_MS = 60_000;

// A client that does not re-send unanswered commands (as Coordis asks) keeps the commands in flight when its
// connection closes only to throw them away once reconnected: they settled at their command timeout alone, though the
// client was back within milliseconds. Coordis fails them at the close.
describe("calls in flight when the connection closes", () => {
  const redis = proxiedServer();
  let admin: RedisClient;
  beforeAll(async () => {
    admin = redis.server.adminClient();
  });
  afterAll(async () => {
    await admin.call("CLIENT", "UNPAUSE").catch(() => {});
  });

  it.each([
    ["connect()", () => connect(redis.proxy.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS })],
    [
      "a client of yours given to Coordis",
      () => new Redis(redis.proxy.url, { ...safeRedisOptions, commandTimeout: COMMAND_TIMEOUT_MS }),
    ],
  ] as const)("%s: they fail at once as unavailable, and the client goes on", async (kind, make) => {
    const client = make();
    client.on("error", () => {});
    const tag = `${prefix}:{${kind.length}}`;
    try {
      // Coordis has used the client (a script call).
      await runScript(client, coreScripts.probe, [`${tag}:warm`, `${tag}:warm-c`], ["w", 60_000]);
      // Writes are held by the server: the script and the command are sent and stay unanswered.
      await admin.call("CLIENT", "PAUSE", String(COMMAND_TIMEOUT_MS), "WRITE");
      const script = runScript(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["held", 60_000]);
      const command = client.incr(`${tag}:n`);
      const settled: string[] = [];
      script.catch(() => settled.push("script"));
      command.catch(() => settled.push("command"));
      // Both written to the connection and unanswered: in ioredis' queue of commands sent.
      const sent = () => (client as unknown as { commandQueue: { length: number } }).commandQueue.length;
      await waitUntil("both sent", () => sent() === 2, 5_000);
      redis.proxy.dropConnections();
      await waitUntil("both calls failed", () => settled.length === 2, 10_000);
      await expect(script).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(command).rejects.toThrow(/Connection is closed/);
      await admin.call("CLIENT", "UNPAUSE");
      // The client reconnects and works; nothing it had in flight is sent again.
      await waitUntil("the client to be ready", () => client.status === "ready", 10_000);
      expect(
        (await runScript(client, coreScripts.probe, [`${tag}:v2`, `${tag}:c2`], ["after", 60_000])).slice(0, 2),
      ).toEqual(["after", 1]);
      expect(await client.get(`${tag}:n`)).toBeNull();
    } finally {
      await admin.call("CLIENT", "UNPAUSE");
      client.disconnect();
    }
  });
});
