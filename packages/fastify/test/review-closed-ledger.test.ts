import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import Fastify from "fastify";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("fastify-closed-ledger");
const clients = sharedClients();

describe("a closed app's limits no longer count", () => {
  it("a rateLimitHook() made after its app closed does not hold its group against a later registration", async () => {
    const a = Fastify();
    await a.register(coordis, { redis: clients.redis, prefix });
    await a.ready();
    await a.close();
    // A hook made late (a test helper, a lazily built not-found handler): it names group "g" under 1 per minute.
    a.coordis.rateLimitHook({ group: "g", rules: [{ name: "m", limit: 1, windowMs: 60_000 }] });

    // A new app, same prefix and server, takes the group under other rules: nothing live counts it otherwise.
    const b = Fastify();
    await b.register(coordis, { redis: clients.redis, prefix });
    try {
      b.get(
        "/x",
        { config: { coordis: { rateLimit: { group: "g", rules: [{ name: "m", limit: 2, windowMs: 60_000 }] } } } },
        async () => "ok",
      );
      await b.ready();
      expect((await b.inject("/x")).statusCode).toBe(200);
      expect((await b.inject("/x")).statusCode).toBe(200);
      expect((await b.inject("/x")).statusCode).toBe(429);
    } finally {
      await b.close();
    }
  });
});
