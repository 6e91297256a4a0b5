import { coordis } from "@coordis/fastify";
import { type RedisCluster, startRedisCluster, testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("fastify-close-cluster");

/** `closeTimeoutMs` bounds the whole close of the plugin's connection, also on a Cluster with a master frozen. */
describe("closing the plugin's Cluster connection with a master frozen (cluster of its own)", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 120_000);
  afterAll(async () => {
    for (const node of cluster.nodes) if (node.paused) node.resume();
    await cluster.stop();
  });

  it("app.close() takes about closeTimeoutMs, not twice it", async () => {
    const app = Fastify();
    await app.register(coordis, {
      url: cluster.url,
      prefix,
      closeTimeoutMs: 1_000,
      rateLimit: { rules: [{ name: "m", limit: 100, windowMs: 60_000 }] },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    for (let i = 0; i < 20; i++) await app.inject({ method: "GET", url: `/x?i=${i}`, remoteAddress: `192.0.2.${i}` });
    (cluster.nodes[0] as (typeof cluster.nodes)[number]).pause();
    const started = performance.now();
    await app.close();
    const took = performance.now() - started;
    // The QUIT waits for the frozen master's reply until closeTimeoutMs; what is left is the bound of the cut.
    expect(took).toBeLessThan(1_600);
  }, 60_000);
});
