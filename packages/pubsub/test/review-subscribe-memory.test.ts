import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { PubSub } from "@coordis/pubsub";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix();

/** The engine's garbage collector, reachable without starting the process with --expose-gc. */
function collector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("PubSub memory over many subscribe() calls", () => {
  const clients = sharedClients();

  it("keeps nothing of a subscribe() that settled while the PubSub stays open", async () => {
    const gc = collector();
    const bus = new PubSub(clients.redis, { prefix });
    try {
      const keep = await bus.subscribe("kept", () => {});
      // The channel stays subscribed, so each call below settles without a command: only what it leaves behind counts.
      const churn = async (calls: number) => {
        for (let i = 0; i < calls; i++) {
          const off = await bus.subscribe("kept", () => {});
          await off();
        }
      };
      await churn(1_000);
      gc();
      const before = process.memoryUsage().heapUsed;
      await churn(30_000);
      gc();
      const grown = process.memoryUsage().heapUsed - before;
      // Each call kept about 300 bytes (a reaction on a promise that only settles at close): ~9 MB here.
      expect(grown).toBeLessThan(3 * 1024 * 1024);
      expect(bus.stats().subscriptions).toBe(1);
      await keep();
    } finally {
      await bus.close();
    }
  });
});
