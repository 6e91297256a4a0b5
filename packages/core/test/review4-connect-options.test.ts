import { connect, coreScripts, InvalidArgumentError, RedisUnavailableError, runScript } from "@coordis/core";
import { recordObserver, testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import type { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

function refusal(fn: () => unknown): InvalidArgumentError {
  try {
    const client = fn() as { disconnect(): void };
    client.disconnect();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error("accepted");
}

describe("connect() and the ioredis options it is given", () => {
  const clients = sharedClients();

  // connect() took redisOptions.db but checked the SELECT only of a database named in the URL: one the server does not
  // have (or a user may not select) left the connection in database 0, every call reading and writing there.
  it("a redisOptions.db the connection cannot select is never replaced by database 0", async () => {
    const observer = recordObserver();
    const client = connect(inject("coordisRedisUrl"), { observer, commandTimeoutMs: 300, redisOptions: { db: 99 } });
    const key = `${prefix}:{db99}`;
    try {
      const err = await runScript(client, coreScripts.probe, [`${key}:v`, `${key}:c`], ["x", 60_000]).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RedisUnavailableError);
      await observer.waitForEvent((e) => /DB index is out of range|NOPERM/.test(e.error?.message ?? ""), {
        what: "the failed SELECT reported",
      });
      expect(await clients.admin.exists(`${key}:v`, `${key}:c`)).toBe(0);
    } finally {
      client.disconnect();
    }
  });

  // Each of these gave a client every primitive then refused (keyPrefix, stringNumbers, replyMapping) or one whose calls
  // never settle (commandTimeout 0 takes the timeout away) or all fail at once (past 2^31 - 1 ms), with no word.
  it("refuses options that would give an unusable client, naming the option, before anything is opened", () => {
    const url = "redis://127.0.0.1:1";
    const cases: Array<[Parameters<typeof connect>, string, RegExp]> = [
      [[url, { redisOptions: { keyPrefix: "app:" } }], "options.redisOptions.keyPrefix", /prefix option/],
      [[url, { redisOptions: { stringNumbers: true } }], "options.redisOptions.stringNumbers", /leave it out/],
      [[url, { redisOptions: { replyMapping: "resp3" } }], "options.redisOptions.replyMapping", /"legacy"/],
      [[url, { redisOptions: { commandTimeout: 0 } }], "options.redisOptions.commandTimeout", /from 1 to 600000/],
      [[url, { redisOptions: { commandTimeout: 2 ** 31 } }], "options.redisOptions.commandTimeout", /from 1 to 600000/],
      [
        [`redis+cluster://127.0.0.1:1`, { clusterOptions: { keyPrefix: "app:" } }],
        "options.clusterOptions.keyPrefix",
        /prefix/,
      ],
      [
        [`redis+cluster://127.0.0.1:1`, { clusterOptions: { redisOptions: { keyPrefix: "app:" } } }],
        "options.clusterOptions.redisOptions.keyPrefix",
        /prefix/,
      ],
    ];
    for (const [args, argument, what] of cases) {
      const err = refusal(() => connect(...args));
      expect(err.argument).toBe(argument);
      expect(err.message).toMatch(what);
    }
    // What is usable still is accepted.
    const ok = connect(url, { redisOptions: { lazyConnect: true, commandTimeout: 1_500, keyPrefix: "" } });
    expect((ok as Redis).options.commandTimeout).toBe(1_500);
    ok.disconnect();
  });
});
