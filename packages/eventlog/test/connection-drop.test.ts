import { connect, type RedisClient } from "@coordis/core";
import { type Entry, EventLog } from "@coordis/eventlog";
import { type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import type { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("eldrop");

/** A blocking read far longer than the test waits: a read left hanging until its command timeout fails the test. */
const BLOCK_MS = 20_000;
/** How long a consumer or tail may take to handle an entry appended after its connection was killed, ms. */
const RECOVERY_MS = 8_000;

type Node = Redis;

/** Every node's connection ids of clients named `name` blocked in `cmd`. */
async function blockedReaders(nodes: Node[], name: string, cmd: string): Promise<Array<[Node, string]>> {
  const found: Array<[Node, string]> = [];
  for (const node of nodes) {
    for (const line of ((await node.client("LIST")) as string).split("\n")) {
      const f = new Map(line.split(" ").map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]));
      if (f.get("name") === name && f.get("cmd") === cmd && (f.get("flags") ?? "").includes("b")) {
        found.push([node, f.get("id") as string]);
      }
    }
  }
  return found;
}

/** Waits until the reader named `name` blocks in `cmd`, then kills that one connection (a blip: it reconnects). */
async function killBlockedReader(nodes: () => Node[], name: string, cmd: string): Promise<void> {
  let readers: Array<[Node, string]> = [];
  await waitUntil(
    `a connection named ${name} blocked in ${cmd}`,
    async () => {
      readers = await blockedReaders(nodes(), name, cmd);
      return readers.length === 1;
    },
    10_000,
  );
  const [node, id] = readers[0] as [Node, string];
  expect(await node.client("KILL", "ID", id)).toBe(1);
}

// A blocking read in flight when its connection drops is never answered (Coordis clients do not re-send unanswered
// commands after a reconnect): unless the consumer or tail gives up on it when the connection closes, it waits for
// its command timeout (blockMs + 5 s), and so does everything after it (reads, claims; a tail's next entries).
describe.each([
  ["standalone", false],
  ["cluster", true],
])("a connection drop during a blocking read (%s)", (_topology, cluster) => {
  let server: RedisServer | undefined;
  let redis: RedisClient;
  let admin: RedisClient;
  let n = 0;
  const name = () => `eldrop-${process.pid}-${cluster ? "c" : "s"}-${n++}`;
  beforeAll(async () => {
    if (cluster) {
      redis = connect(inject("coordisClusterUrl"));
      admin = connect(inject("coordisAdminClusterUrl"));
    } else {
      server = await startRedis({ leastPrivilege: true });
      redis = connect(server.url);
      admin = connect(server.adminUrl);
    }
  });
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
    await server?.stop();
  });
  const nodes = (): Node[] => (cluster ? (admin as Cluster).nodes("master") : [admin as Redis]);
  /** A client whose connections (its blocking readers' included) carry `connectionName`. */
  const named = (connectionName: string): RedisClient =>
    cluster
      ? connect(inject("coordisClusterUrl"), { clusterOptions: { redisOptions: { connectionName } } })
      : connect((server as RedisServer).url, { redisOptions: { connectionName } });

  it("a consumer reads again at once after the connection of its XREADGROUP is killed", async () => {
    const connectionName = name();
    const client = named(connectionName);
    try {
      const log = new EventLog<number>(client, connectionName, { prefix });
      const handled: number[] = [];
      const consumer = log
        .group("g", { consumer: "c" })
        .consume((e) => void handled.push(e.data), { blockMs: BLOCK_MS, claimIdleMs: 60_000 });
      try {
        await killBlockedReader(nodes, connectionName, "xreadgroup");
        await log.append(1);
        await waitUntil("the entry appended after the drop is handled", () => handled.length === 1, RECOVERY_MS);
        expect(handled).toEqual([1]);
      } finally {
        await consumer.stop({ timeoutMs: 2_000 });
      }
    } finally {
      client.disconnect();
    }
  });

  it("a tail yields again at once after the connection of its XREAD is killed", async () => {
    const connectionName = name();
    const client = named(connectionName);
    try {
      const log = new EventLog<number>(client, connectionName, { prefix, chain: true });
      await log.append(0);
      const iterator = log.tail({ from: "start", blockMs: BLOCK_MS })[Symbol.asyncIterator]();
      try {
        expect(((await iterator.next()).value as Entry<number>).data).toBe(0);
        const next = iterator.next();
        await killBlockedReader(nodes, connectionName, "xread");
        await log.append(1);
        let got: IteratorResult<Entry<number>> | undefined;
        void next.then((r) => {
          got = r;
        });
        await waitUntil("the entry appended after the drop is yielded", () => got !== undefined, RECOVERY_MS);
        expect(got?.value?.data).toBe(1);
      } finally {
        await iterator.return?.();
      }
    } finally {
      client.disconnect();
    }
  });
});

describe("a Redis restart that lost everything, during a consumer's blocking read", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true }); // no persistence: a restart loses the log and the group
    redis = connect(server.url);
    admin = connect(server.adminUrl);
  });
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
    await server.stop();
  });

  it("the consumer creates its group again at once and handles what is appended after the restart", async () => {
    const log = new EventLog<number>(redis, "restarted", { prefix });
    const handled: number[] = [];
    const consumer = log
      .group("g", { consumer: "c" })
      .consume((e) => void handled.push(e.data), { blockMs: BLOCK_MS, claimIdleMs: 60_000 });
    try {
      await log.append(1);
      await waitUntil("the entry appended before the restart is handled", () => handled.length === 1);
      await waitUntil("the consumer blocks in XREADGROUP", async () =>
        ((await admin.client("LIST")) as string)
          .split("\n")
          .some((line) => / flags=\S*b\S* /.test(line) && / cmd=xreadgroup( |$)/.test(line)),
      );
      await server.restart();
      await waitUntil("the log is gone", async () => (await log.length().catch(() => -1)) === 0);
      await log.append(2);
      await waitUntil("the entry appended after the restart is handled", () => handled.length === 2, RECOVERY_MS);
      expect(handled).toEqual([1, 2]);
      await waitUntil("acknowledged", () => consumer.stats().acked === 2);
      expect(await log.group("g", { consumer: "metrics" }).info()).toMatchObject({ pending: 0, lag: 0 });
    } finally {
      await consumer.stop({ timeoutMs: 2_000 });
    }
  });
});

// While its connection cannot reconnect (refused), a consumer must not pile up reads for the reconnect: each would
// be written once the connection is back, the ones the consumer gave up on delivering entries to nobody (they wait
// claimIdleMs to be reclaimed).
describe("a consumer whose connection cannot reconnect for a while", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let direct: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    proxy = await startProxy({ target: server });
    direct = connect(server.url);
    admin = connect(server.adminUrl);
  });
  afterAll(async () => {
    direct.disconnect();
    admin.disconnect();
    await proxy.close();
    await server.stop();
  });

  it("handles the entries appended meanwhile as soon as it is back, none left to a read it gave up on", async () => {
    const client = connect(proxy.url);
    client.on("error", () => {});
    let reconnects = 0;
    client.on("reconnecting", () => {
      reconnects++;
    });
    const log = new EventLog<number>(client, "refused", { prefix });
    const handled = new Set<number>();
    const consumer = log
      .group("g", { consumer: "c" })
      .consume((e) => void handled.add(e.data), { blockMs: BLOCK_MS, claimIdleMs: 60_000, batch: 1 });
    try {
      await waitForBlockedRead(admin);
      // Wait for the reconnect loop instead of killing: refuse, then reset every connection.
      proxy.refuse();
      proxy.dropConnections();
      // The client's own connection and the consumer's retry on the same schedule: several refused attempts.
      await waitUntil("several refused reconnect attempts", () => reconnects >= 5, 20_000);
      const appender = new EventLog<number>(direct, "refused", { prefix });
      for (let i = 0; i < 10; i++) await appender.append(i);
      await proxy.accept();
      await waitUntil(
        `every entry appended during the outage is handled (${handled.size}/10)`,
        () => handled.size === 10,
        RECOVERY_MS,
      );
    } finally {
      await consumer.stop({ timeoutMs: 2_000 });
      client.disconnect();
    }
  });
});

/** Waits until a consumer blocks in XREADGROUP on the server of `admin`. */
async function waitForBlockedRead(admin: RedisClient): Promise<void> {
  await waitUntil("a consumer blocked in XREADGROUP", async () =>
    ((await admin.client("LIST")) as string)
      .split("\n")
      .some((line) => / flags=\S*b\S* /.test(line) && / cmd=xreadgroup( |$)/.test(line)),
  );
}

// At least once across blips: connections reset while entries are appended, read, handled and acknowledged.
describe("a consumer group across repeated connection resets", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let direct: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    proxy = await startProxy({ target: server });
    direct = connect(server.url);
  });
  afterAll(async () => {
    direct.disconnect();
    await proxy.close();
    await server.stop();
  });

  it("every entry is handled and acknowledged, none lost or left pending", async () => {
    const clients = [connect(proxy.url), connect(proxy.url)];
    for (const c of clients) c.on("error", () => {});
    const handled = new Map<number, number>();
    const consumers = clients.map((c, i) =>
      new EventLog<number>(c, "blips", { prefix }).group("g", { consumer: `c${i}` }).consume(
        async (e) => {
          handled.set(e.data, (handled.get(e.data) ?? 0) + 1);
          await new Promise((resolve) => setImmediate(resolve));
        },
        // claimIdleMs well above the stalls of a loaded machine (the README's rule): with 300 ms, CI load let the two
        // consumers claim an entry from each other until it reached maxDeliveries and was dead-lettered, handled.
        { concurrency: 4, batch: 4, claimIdleMs: 1_000, blockMs: 100 },
      ),
    );
    const appender = new EventLog<number>(direct, "blips", { prefix });
    const TOTAL = 300;
    try {
      for (let i = 0; i < TOTAL; i++) {
        await appender.append(i);
        if (i % 60 === 59) {
          // Once the consumers have caught up with part of it, reset every connection through the proxy.
          await waitUntil(`handled ${i - 30} entries`, () => handled.size >= i - 30, 10_000);
          proxy.dropConnections();
        }
      }
      await waitUntil(`all ${TOTAL} handled (${handled.size})`, () => handled.size === TOTAL, 20_000);
      const group = appender.group("g", { consumer: "metrics" });
      await waitUntil("nothing pending", async () => (await group.info())?.pending === 0, 20_000);
    } finally {
      await Promise.all(consumers.map((c) => c.stop({ timeoutMs: 3_000 })));
      for (const c of clients) c.disconnect();
    }
    expect([...handled.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: TOTAL }, (_, i) => i));
    expect(await appender.deadLetters()).toEqual([]);
  });
});
