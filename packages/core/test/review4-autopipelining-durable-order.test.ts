import { connect, coreScripts, parseDurability, runScript, runScriptDurable, serverInfo } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
// WAIT 0 answers at once: only the durable call's place in the order is tested.
const durability = parseDurability("durability", { replicas: 0, aof: "if-supported", timeoutMs: 100 });

// Script calls run in the order they were made, durable ones included. With enableAutoPipelining (an option Coordis
// supports), a durable call's EVALSHA and WAIT went into ioredis' auto-pipeline, written a turn of the event loop
// later, while the plain calls made after it were written at once: they ran first.
describe("a durable call on a client with enableAutoPipelining", () => {
  it("runs before the script calls made after it", async () => {
    const client = connect(inject("coordisRedisUrl"), { redisOptions: { enableAutoPipelining: true } });
    // The probe bumps a counter and answers its new value: the order in which the calls ran.
    const keys = [`${prefix}:{order}:v`, `${prefix}:{order}:c`] as const;
    try {
      await serverInfo(client); // the version is known: the durable call is sent in the tick it is made
      await runScript(client, coreScripts.probe, keys, ["warm", 60_000]); // the script is loaded and seen
      const durable = runScriptDurable(client, coreScripts.probe, keys, ["durable", 60_000], durability);
      const plain = runScript(client, coreScripts.probe, keys, ["plain", 60_000]);
      const [{ reply }, after] = await Promise.all([durable, plain]);
      expect([reply[1], after[1]]).toEqual([2, 3]);
    } finally {
      client.disconnect();
    }
  });
});
