import { type RedisClient, RedisUnavailableError, runScript } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { uniqueScript } from "./fixtures/test-scripts.js";

const prefix = testPrefix("busy-probe");

/** RPUSH of ARGV[1]: the list shows the order in which the calls ran on the server. */
function pusher(label: string) {
  return uniqueScript<readonly ["list"], readonly ["item"], number>(
    label,
    ["list"],
    ["item"],
    "return redis.call('RPUSH', KEYS[1], ARGV[1])",
  );
}

/** True once `redis` answers a plain command with BUSY (a script is running past busy-reply-threshold). */
async function answersBusy(redis: RedisClient): Promise<boolean> {
  try {
    await redis.get(`${prefix}:probe`);
    return false;
  } catch (err) {
    return err instanceof Error && err.message.startsWith("BUSY");
  }
}

describe("a script's first call refused before it ran (BUSY)", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis({ config: { "busy-reply-threshold": 10 } });
  });
  afterAll(async () => {
    await server.stop();
  });

  it("does not count the script as loaded: later calls keep their issue order", async () => {
    const redis = server.client();
    const admin = server.adminClient();
    const blocker = server.adminClient({ commandTimeoutMs: 30_000 });
    const list = `${prefix}:{order}`;
    const first = pusher("busy-first");
    const other = pusher("busy-other");
    await runScript(redis, other, [list], ["warm"]);

    // Another client's script runs on (no writes, so SCRIPT KILL may stop it): every other command gets BUSY.
    const looping = blocker.eval("while true do end", 0).catch((err: unknown) => err);
    await waitUntil("the server to answer BUSY", () => answersBusy(admin), 5_000);
    // The first call of `first` is refused before it runs: the server never loaded it.
    const refused = await runScript(redis, first, [list], ["refused"]).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RedisUnavailableError);
    expect((refused as Error).message).toContain("BUSY");
    await admin.call("SCRIPT", "KILL");
    await looping;
    await waitUntil("the server to serve again", async () => !(await answersBusy(admin)), 5_000);

    // `first` is still unknown to the server: its next call must run before a call made after it.
    await Promise.all([runScript(redis, first, [list], ["a"]), runScript(redis, other, [list], ["b"])]);
    expect(await admin.lrange(list, 0, -1)).toEqual(["warm", "a", "b"]);
  });
});
