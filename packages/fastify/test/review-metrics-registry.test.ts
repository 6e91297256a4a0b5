import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { Counter, register as globalRegistry, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-metrics-registry");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

/** What registering the plugin with `metrics` rejects with. */
async function registerError(metrics: unknown): Promise<unknown> {
  const app = Fastify();
  try {
    await app.register(coordis, { redis: shared, prefix, metrics } as Parameters<typeof coordis>[1]);
    await app.ready();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await app.close().catch(() => {});
  }
}

/** A metric of a Coordis name that is not Coordis' (other labels). */
function foreignCounter(registry: Registry): void {
  new Counter({ name: "coordis_operations_total", help: "mine", labelNames: ["mine"], registers: [registry] });
}

describe("a registry holding a metric of a Coordis name that is not Coordis'", () => {
  it("metrics.registry: the error names options.metrics.registry, the option the user passed", async () => {
    const registry = new Registry();
    foreignCounter(registry);
    const err = await registerError({ registry });
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe("options.metrics.registry");
    expect((err as Error).message).toContain('"coordis_operations_total"');
    // The plugin's user never called coordisMetrics(): the fix it names is the plugin's option.
    expect((err as Error).message).not.toContain("coordisMetrics()");
    expect((err as Error).message).toContain("metrics: { registry }");
  });

  it("a registry-like object prom-client cannot register into: the error names options.metrics.registry", async () => {
    const registry = { getSingleMetric: () => undefined, metrics: async () => "" };
    const err = await registerError({ registry });
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe("options.metrics.registry");
  });

  it("metrics: true (the global registry): the error names options.metrics and says it is the global registry", async () => {
    foreignCounter(globalRegistry);
    try {
      const err = await registerError(true);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe("options.metrics");
      expect((err as Error).message).toContain("global prom-client registry");
      expect((err as Error).message).not.toContain("coordisMetrics()");
    } finally {
      globalRegistry.removeSingleMetric("coordis_operations_total");
    }
  });
});
