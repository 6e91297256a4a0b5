import { connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { coordisMetrics } from "@coordis/metrics";
import { Queue } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer, sharedClients } from "@coordis/testing/vitest";
import { AggregatorRegistry, Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";

const prefix = testPrefix("metrics-source-status");

/** The value of the sample `series` (name and labels exactly as exposed), or undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The metric family names a scrape declares, one per `# TYPE` line, with their types. */
function families(text: string): string[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("# TYPE "))
    .map((l) => l.split(" ").slice(2).join(" "));
}

const UP = "coordis_source_up";
const AT = "coordis_source_last_read_timestamp_seconds";
const nowSeconds = () => Date.now() / 1000;

describe("staleness of a queue's figures while its Redis is unreachable", () => {
  const proxied = proxiedServer();
  let redis: RedisClient | undefined;
  afterAll(() => redis?.disconnect());

  it("up 1 and a fresh timestamp; up 0 and the same timestamp while reads fail; both move on once Redis is back", async () => {
    redis = connect(proxied.proxy.url);
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const queue = new Queue<string, string>(redis, `stale-${Date.now()}`, { prefix });
    const other = new Queue<string, string>(proxied.direct, queue.name, { prefix });
    const q = `queue="${queue.name}"`;
    const up = `${UP}{kind="queue",${q}}`;
    const at = `${AT}{kind="queue",${q}}`;
    try {
      await queue.add("a");
      await queue.add("b");
      const untrack = metrics.trackQueue(queue.name, () => queue.counts());

      const before = nowSeconds();
      const first = await registry.metrics();
      const after = nowSeconds();
      expect(sample(first, up)).toBe(1);
      const readAt = sample(first, at) as number;
      expect(readAt).toBeGreaterThanOrEqual(before);
      expect(readAt).toBeLessThanOrEqual(after);
      // Unix seconds, as Redis' own clock tells them (not milliseconds).
      const [redisSeconds] = (await proxied.direct.call("TIME")) as [string, string];
      expect(Math.abs(readAt - Number(redisSeconds))).toBeLessThan(60);
      expect(sample(first, `coordis_queue_depth{${q}}`)).toBe(2);

      proxied.proxy.blackhole();
      await other.add("c"); // Redis itself has a third job the scrape cannot read
      for (let scrape = 0; scrape < 2; scrape++) {
        const during = await registry.metrics();
        expect(sample(during, up)).toBe(0);
        expect(sample(during, at)).toBe(readAt); // not moved between the scrapes that failed
        expect(sample(during, `coordis_queue_depth{${q}}`)).toBe(2); // the last figures, kept
      }

      proxied.proxy.heal();
      let recovered = "";
      await waitUntil(
        "the scrape reads the queue again once Redis is reachable",
        async () => {
          recovered = await registry.metrics();
          return sample(recovered, up) === 1;
        },
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      expect(sample(recovered, `coordis_queue_depth{${q}}`)).toBe(3);
      expect(sample(recovered, at)).toBeGreaterThan(readAt);

      untrack();
      const gone = await registry.metrics();
      expect(sample(gone, up)).toBeUndefined();
      expect(sample(gone, at)).toBeUndefined();
      expect(gone).not.toContain(q);
    } finally {
      proxied.proxy.heal();
      await queue.close();
      await other.close();
    }
  });
});

describe("staleness of a consumer group's figures", () => {
  const clients = sharedClients();

  it("a group never read has up 0 and no timestamp; a failing source keeps its figures and timestamp", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const name = `audit-${Date.now()}`;
    const log = new EventLog<{ n: number }>(clients.redis, name, { prefix });
    const group = log.group("indexer", { consumer: "metrics" });
    let fail = false;
    const untrack = metrics.trackEventLogGroup(name, "indexer", () =>
      fail ? Promise.reject(new Error("connection lost")) : group.info(),
    );
    const labels = `{kind="eventlog_group",log="${name}",group="indexer"}`;
    const lag = `coordis_eventlog_group_lag{log="${name}",group="indexer"}`;

    // The group does not exist yet: its source answers null, so no figures were ever read.
    const never = await registry.metrics();
    expect(sample(never, `${UP}${labels}`)).toBe(0);
    expect(sample(never, `${AT}${labels}`)).toBeUndefined();
    expect(sample(never, lag)).toBeUndefined();

    await group.create();
    await log.append({ n: 1 });
    await log.append({ n: 2 });
    const fresh = await registry.metrics();
    expect(sample(fresh, `${UP}${labels}`)).toBe(1);
    expect(sample(fresh, lag)).toBe(2);
    const readAt = sample(fresh, `${AT}${labels}`) as number;
    expect(readAt).toBeGreaterThan(0);

    fail = true;
    await log.append({ n: 3 });
    for (let scrape = 0; scrape < 2; scrape++) {
      const failing = await registry.metrics();
      expect(sample(failing, `${UP}${labels}`)).toBe(0);
      expect(sample(failing, `${AT}${labels}`)).toBe(readAt);
      expect(sample(failing, lag)).toBe(2);
    }

    fail = false;
    let recovered = "";
    await waitUntil("the timestamp moves on once the source answers again", async () => {
      recovered = await registry.metrics();
      return (sample(recovered, `${AT}${labels}`) as number) > readAt;
    });
    expect(sample(recovered, `${UP}${labels}`)).toBe(1);
    expect(sample(recovered, lag)).toBe(3);

    untrack();
    const gone = await registry.metrics();
    expect(sample(gone, `${UP}${labels}`)).toBeUndefined();
    expect(sample(gone, `${AT}${labels}`)).toBeUndefined();
  });

  it("a queue registered without a source (workers only) has no status series; tracking again starts afresh", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const queue = new Queue<string, string>(clients.redis, `workers-${Date.now()}`, { prefix });
    try {
      metrics.trackQueue(queue.name);
      const workersOnly = await registry.metrics();
      expect(workersOnly).not.toContain(`${UP}{kind="queue",queue="${queue.name}"}`);

      metrics.trackQueue(queue.name, () => queue.counts());
      expect(sample(await registry.metrics(), `${UP}{kind="queue",queue="${queue.name}"}`)).toBe(1);
      // Replaced by a source that cannot answer: what the first one read is not this one's.
      metrics.trackQueue(queue.name, () => Promise.reject(new Error("down")));
      const replaced = await registry.metrics();
      expect(sample(replaced, `${UP}{kind="queue",queue="${queue.name}"}`)).toBe(0);
      expect(sample(replaced, `${AT}{kind="queue",queue="${queue.name}"}`)).toBeUndefined();
    } finally {
      await queue.close();
    }
  });
});

describe("the status series in the OpenMetrics format and under Node cluster", () => {
  const clients = sharedClients();

  it("are gauge families of their own, so an OpenMetrics scrape declares every family once", async () => {
    const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const metrics = coordisMetrics({ registry });
    const queue = new Queue<string, string>(clients.redis, `om-${Date.now()}`, { prefix, observer: metrics.observer });
    try {
      metrics.trackQueue(queue.name, () => queue.counts());
      metrics.trackEventLogGroup("audit", "indexer", () => Promise.reject(new Error("down")));
      await queue.add("a");
      const text = await registry.metrics();
      expect(sample(text, `${UP}{kind="queue",queue="${queue.name}"}`)).toBe(1);
      expect(sample(text, `${UP}{kind="eventlog_group",log="audit",group="indexer"}`)).toBe(0);
      const declared = families(text);
      const names = declared.map((f) => f.split(" ")[0]);
      expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
      expect(declared).toContain(`${UP} gauge`);
      expect(declared).toContain(`${AT} gauge`);
      expect(text.trimEnd().endsWith("# EOF")).toBe(true);
    } finally {
      await queue.close();
    }
  });

  it("aggregate as the stalest worker's: up only when every worker read, the oldest timestamp", async () => {
    const name = `cluster-${Date.now()}`;
    const queue = new Queue<string, string>(clients.redis, name, { prefix });
    try {
      await queue.add("a");
      await queue.add("b");
      let secondFails = false;
      const [first, second] = [new Registry(), new Registry()];
      coordisMetrics({ registry: first }).trackQueue(name, () => queue.counts());
      coordisMetrics({ registry: second }).trackQueue(name, () =>
        secondFails ? Promise.reject(new Error("connection lost")) : queue.counts(),
      );
      const at = (json: Awaited<ReturnType<Registry["getMetricsAsJSON"]>>) =>
        json.find((m) => m.name === AT)?.values[0]?.value as number;
      const secondReadAt = at(await second.getMetricsAsJSON());
      secondFails = true;
      let firstJson = await first.getMetricsAsJSON();
      await waitUntil("the first worker reads the queue after the second one's last read", async () => {
        firstJson = await first.getMetricsAsJSON();
        return at(firstJson) > secondReadAt;
      });
      const aggregated = AggregatorRegistry.aggregate([firstJson, await second.getMetricsAsJSON()]);
      const text = await aggregated.metrics();
      const q = `queue="${name}"`;
      expect(sample(text, `${UP}{kind="queue",${q}}`)).toBe(0);
      expect(sample(text, `${AT}{kind="queue",${q}}`)).toBe(secondReadAt);
      expect(sample(text, `coordis_queue_depth{${q}}`)).toBe(2);
    } finally {
      await queue.close();
    }
  });
});
