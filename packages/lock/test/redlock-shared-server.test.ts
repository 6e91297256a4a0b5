import { InvalidArgumentError, type RedisClient, safeClusterOptions } from "@coordis/core";
import { Redlock } from "@coordis/lock";
import { testPrefix } from "@coordis/testing";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// Redlock's quorum counts each node once: two nodes that reach one server would let a lock be granted by fewer
// independent masters than the majority it promises. Clients whose options name the same server are refused.
describe("Redlock refuses nodes that reach the same server", () => {
  const made: Array<Redis | Cluster> = [];
  const client = (options: RedisOptions): RedisClient => {
    const c = new Redis({ lazyConnect: true, enableOfflineQueue: false, ...options });
    made.push(c);
    return c;
  };
  afterAll(() => {
    for (const c of made) c.disconnect();
  });

  const refusal = (nodes: RedisClient[]): InvalidArgumentError => {
    try {
      new Redlock(nodes, "x", { prefix });
    } catch (err) {
      return err as InvalidArgumentError;
    }
    throw new Error("accepted");
  };

  it("the same host and port, the same socket, or a Sentinel master through a shared sentinel", () => {
    const cases: Array<[RedisClient[], RegExp]> = [
      [
        [client({ port: 7001 }), client({ port: 7002 }), client({ host: "localhost", port: 7001 })],
        /nodes\[0\] and nodes\[2\] both connect to localhost:7001/,
      ],
      [[client({ path: "/tmp/a.sock" }), client({ path: "/tmp/a.sock" })], /the socket \/tmp\/a.sock/],
      [
        [
          client({
            sentinels: [
              { host: "10.0.0.1", port: 26379 },
              { host: "10.0.0.2", port: 26379 },
            ],
            name: "m",
          }),
          client({
            sentinels: [
              { host: "10.0.0.3", port: 26379 },
              { host: "10.0.0.2", port: 26379 },
            ],
            name: "m",
          }),
        ],
        /the Sentinel master "m" \(sentinel 10\.0\.0\.2:26379\)/,
      ],
    ];
    for (const [nodes, message] of cases) {
      const err = refusal(nodes);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.argument).toBe("nodes");
      expect(err.message).toMatch(message);
      expect(err.message).toMatch(/use a Mutex/);
    }
  });

  it("different servers are accepted: other ports, other sockets, other Sentinel masters", () => {
    expect(
      () =>
        new Redlock([client({ port: 7001 }), client({ port: 7002 }), client({ host: "h2", port: 7001 })], "x", {
          prefix,
        }),
    ).not.toThrow();
    expect(
      () => new Redlock([client({ path: "/tmp/a.sock" }), client({ path: "/tmp/b.sock" })], "x", { prefix }),
    ).not.toThrow();
    const sentinels = [{ host: "10.0.0.1", port: 26379 }];
    expect(
      () => new Redlock([client({ sentinels, name: "m1" }), client({ sentinels, name: "m2" })], "x", { prefix }),
    ).not.toThrow();
  });

  // A Redis Cluster client reaches the nodes it was seeded with: two of them seeded with one node reach one cluster,
  // whose master for the lock's slot would count twice (2 of 3 "masters" granting on one server), and so does a plain
  // client of one of its seed nodes.
  it("Cluster clients seeded with the same node, or a plain client of a cluster's seed node", () => {
    const cluster = (nodes: ConstructorParameters<typeof Cluster>[0]): RedisClient => {
      const c = new Cluster(nodes, { ...safeClusterOptions, lazyConnect: true, enableOfflineQueue: false });
      made.push(c);
      return c;
    };
    const cases: Array<[RedisClient[], RegExp]> = [
      [
        [cluster([{ host: "10.0.0.1", port: 7000 }]), cluster([{ host: "10.0.0.1", port: 7000 }]), client({ port: 1 })],
        /nodes\[0\] and nodes\[1\] both connect to 10\.0\.0\.1:7000/,
      ],
      [
        [cluster(["10.0.0.2:7001", "10.0.0.1:7000"]), client({ port: 1 }), cluster(["redis://10.0.0.1:7000"])],
        /nodes\[0\] and nodes\[2\] both connect to 10\.0\.0\.1:7000/,
      ],
      [[cluster([7005]), client({ port: 7005 })], /nodes\[0\] and nodes\[1\] both connect to localhost:7005/],
    ];
    for (const [nodes, message] of cases) {
      const err = refusal(nodes);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.argument).toBe("nodes");
      expect(err.message).toMatch(message);
    }
    // Independent clusters are accepted.
    expect(
      () =>
        new Redlock(
          [cluster([{ host: "10.0.0.1", port: 7000 }]), cluster(["10.0.1.1:7000"]), cluster([{ port: 7100 }])],
          "x",
          { prefix },
        ),
    ).not.toThrow();
  });
});
