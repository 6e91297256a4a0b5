import { connect, type RedisClient } from "@coordis/core";
import { coordisMetrics } from "@coordis/metrics";
import { Queue } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer, sharedClients } from "@coordis/testing/vitest";
import Fastify from "fastify";
import { AggregatorRegistry, Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";

const prefix = testPrefix("metrics-review3");

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The metric family names a scrape declares, one per `# TYPE` line. */
function families(text: string): string[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("# TYPE "))
    .map((l) => l.split(" ")[2] as string);
}

describe("scraped in the OpenMetrics format", () => {
  const clients = sharedClients();

  it("every metric family is declared once, so a Prometheus that negotiates OpenMetrics can parse the scrape", async () => {
    const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const metrics = coordisMetrics({ registry });
    const queue = new Queue<string, string>(clients.redis, `om-${Date.now()}`, { prefix, observer: metrics.observer });
    try {
      metrics.trackQueue(queue.name, () => queue.counts());
      await queue.add("a");
      metrics.observer.onOperation?.({
        primitive: "queue",
        op: "process",
        outcome: "completed",
        durationMs: 3,
        name: queue.name,
      });
      const text = await registry.metrics();
      expect(sample(text, `coordis_queue_jobs{queue="${queue.name}",state="waiting"}`)).toBe(1);
      // A counter's family is its name without `_total`: a gauge of that name is a second TYPE line for one family,
      // which the OpenMetrics parser rejects, losing the whole scrape.
      const names = families(text);
      expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
      // prom-client renames a counter it scrapes as OpenMetrics (its family name): a later coordisMetrics() on the
      // registry still finds and reuses every Coordis metric.
      const again = coordisMetrics({ registry });
      again.observer.onOperation?.({ primitive: "lock", op: "acquire", outcome: "acquired", durationMs: 1 });
      const next = await registry.metrics();
      expect(sample(next, 'coordis_operations_total{primitive="lock",op="acquire",outcome="acquired"}')).toBe(1);
      expect(families(next)).toEqual(names);
    } finally {
      await queue.close();
    }
  });
});

describe("Node cluster workers aggregated by prom-client's AggregatorRegistry", () => {
  const clients = sharedClients();

  it("a queue every worker tracks reports its depth once, not once per worker; counters add up", async () => {
    const name = `cluster-${Date.now()}`;
    const queue = new Queue<string, string>(clients.redis, name, { prefix });
    try {
      await queue.add("a");
      await queue.add("b");
      // Two workers of one app: each its own registry, each tracking the queue (the same code runs in every worker).
      const workers = [new Registry(), new Registry()].map((registry) => {
        const metrics = coordisMetrics({ registry });
        metrics.trackQueue(name, () => queue.counts());
        metrics.observer.onOperation?.({
          primitive: "queue",
          op: "process",
          outcome: "completed",
          durationMs: 2,
          name,
        });
        return registry;
      });
      const aggregated = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
      const text = await aggregated.metrics();
      const q = `queue="${name}"`;
      expect(sample(text, `coordis_queue_depth{${q}}`)).toBe(2);
      expect(sample(text, `coordis_queue_jobs{${q},state="waiting"}`)).toBe(2);
      expect(sample(text, `coordis_queue_deliveries_total{${q},outcome="completed"}`)).toBe(2);
    } finally {
      await queue.close();
    }
  });
});

describe("a /metrics route while Redis is unreachable", () => {
  const proxied = proxiedServer();
  let redis: RedisClient | undefined;
  afterAll(() => redis?.disconnect());

  it("answers the scrape with the last queue figures and every other series, never a failed scrape", async () => {
    redis = connect(proxied.proxy.url);
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const queue = new Queue<string, string>(redis, `down-${Date.now()}`, { prefix, observer: metrics.observer });
    const other = new Queue<string, string>(proxied.direct, queue.name, { prefix });
    metrics.trackQueue(queue.name, () => queue.counts());
    const app = Fastify();
    app.get("/metrics", async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    });
    try {
      await queue.add("a");
      await queue.add("b");
      const q = `queue="${queue.name}"`;
      const before = await app.inject({ method: "GET", url: "/metrics" });
      expect(sample(before.body, `coordis_queue_depth{${q}}`)).toBe(2);

      proxied.proxy.blackhole();
      await expect(queue.add("c")).rejects.toThrow();
      // Redis itself is up and gets a third job from another client: the scrape cannot read it, and says so by
      // keeping the last figures.
      await other.add("d");
      const during = await app.inject({ method: "GET", url: "/metrics" });
      expect(during.statusCode).toBe(200);
      expect(during.headers["content-type"]).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
      expect(sample(during.body, `coordis_queue_depth{${q}}`)).toBe(2);
      expect(sample(during.body, `coordis_queue_jobs_added_total{${q},outcome="added"}`)).toBe(2);
      expect(sample(during.body, `coordis_queue_jobs_added_total{${q},outcome="error"}`)).toBe(1);

      proxied.proxy.heal();
      await waitUntil(
        "the scrape reads the queue again once Redis is reachable",
        async () =>
          sample((await app.inject({ method: "GET", url: "/metrics" })).body, `coordis_queue_depth{${q}}`) === 3,
        { timeoutMs: 15_000, intervalMs: 50 },
      );
    } finally {
      proxied.proxy.heal();
      await app.close();
      await queue.close();
      await other.close();
    }
  });
});

describe("the registry's Coordis metrics removed one by one", () => {
  it("a coordisMetrics() after its operations counter was removed still reports the queues it tracks", async () => {
    const registry = new Registry();
    coordisMetrics({ registry });
    registry.removeSingleMetric("coordis_operations_total");
    const metrics = coordisMetrics({ registry });
    metrics.trackQueue("mail", async () => ({
      waiting: 4,
      delayed: 0,
      active: 1,
      completed: 0,
      dead: 0,
      cancelled: 0,
      paused: false,
    }));
    const text = await registry.metrics();
    expect(sample(text, 'coordis_queue_depth{queue="mail"}')).toBe(5);
  });
});
