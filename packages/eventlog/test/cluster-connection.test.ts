import { randomBytes } from "node:crypto";
import { connect, parseRedisUrl } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { Cluster, type ClusterNode, type ClusterOptions } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elcluster");

/** The connection name of this file's client: every connection built from its settings carries it. */
const connectionName = `elcluster-${randomBytes(4).toString("hex")}`;

/**
 * The suite's Cluster (its clients log in as the least-privilege ACL user, with a password) with the `duplicate()`
 * of ioredis 5, a supported peer (`^5.2.5`): the override options are merged shallowly, so a `redisOptions` passed to
 * it replaces the client's own (user, password, TLS, name...) instead of being merged into them as in ioredis 6.
 */
function clusterWithShallowDuplicate(): Cluster {
  const cluster = connect(inject("coordisClusterUrl"), {
    clusterOptions: { redisOptions: { connectionName } },
  }) as Cluster;
  const startup = (cluster as unknown as { startupNodes: ClusterNode[] }).startupNodes;
  cluster.duplicate = ((nodes: ClusterNode[] = [], options: ClusterOptions = {}) =>
    new Cluster(nodes.length > 0 ? nodes : startup.slice(0), { ...cluster.options, ...options })) as never;
  return cluster;
}

/** The user of the suite's clients, from the Cluster URL. */
function suiteUser(): string {
  const user = parseRedisUrl(inject("coordisClusterUrl")).username;
  // Not the default user: a connection that lost the credentials would log in as that one.
  expect(user).toBeDefined();
  expect(user).not.toBe("default");
  return user as string;
}

/** CLIENT LIST of every node, as field maps. */
async function clientList(admin: Cluster): Promise<Array<Map<string, string>>> {
  const lists = await Promise.all(admin.nodes("all").map((n) => n.client("LIST") as Promise<string>));
  return lists.flatMap((text) =>
    text
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => new Map(line.split(" ").map((f) => [f.slice(0, f.indexOf("=")), f.slice(f.indexOf("=") + 1)]))),
  );
}

/**
 * Waits for this file's connection that last ran `cmd` (a blocking read) and returns the ACL user it is logged in
 * as: a connection built from the client's settings carries its name; one that lost them is not found.
 */
async function blockingReader(admin: Cluster, cmd: string): Promise<string | undefined> {
  let user: string | undefined;
  await waitUntil(
    `a connection named ${connectionName} running ${cmd}`,
    async () => {
      const mine = (await clientList(admin)).find((c) => c.get("name") === connectionName && c.get("cmd") === cmd);
      user = mine?.get("user");
      return mine !== undefined;
    },
    10_000,
  );
  return user;
}

describe("blocking reads of consumers and tails on a Cluster keep the client's settings (ACL user, password, name)", () => {
  let cluster: Cluster;
  let admin: Cluster;
  beforeAll(() => {
    cluster = clusterWithShallowDuplicate();
    admin = connect(inject("coordisAdminClusterUrl")) as Cluster;
  });
  afterAll(() => {
    cluster.disconnect();
    admin.disconnect();
  });

  it("a consumer's XREADGROUP connection is logged in as the client's user", async () => {
    const log = new EventLog<number>(cluster, "reader", { prefix });
    const consumer = log.group("g", { consumer: "c1" }).consume(() => {}, { blockMs: 1_000 });
    try {
      expect(await blockingReader(admin, "xreadgroup")).toBe(suiteUser());
    } finally {
      await consumer.stop({ timeoutMs: 5_000 });
    }
  });

  it("a tail's XREAD connection is logged in as the client's user", async () => {
    const log = new EventLog<number>(cluster, "tail-reader", { prefix });
    const controller = new AbortController();
    const reading = (async () => {
      for await (const _ of log.tail({ blockMs: 1_000, signal: controller.signal })) break;
    })();
    try {
      expect(await blockingReader(admin, "xread")).toBe(suiteUser());
    } finally {
      controller.abort();
      await reading;
    }
  });
});
