import { connect, parseInfo, type RedisClient } from "@coordis/core";
import type { RedisCluster, RedisServer } from "@coordis/testing";
import { tryWaitUntil } from "@coordis/testing";

/** What one node says about itself (`INFO replication`, `CLUSTER INFO`); undefined fields when it did not answer. */
export interface NodeView {
  readonly node: RedisServer;
  readonly role: "master" | "slave" | undefined;
  /** A replica's master port. */
  readonly masterPort: number | undefined;
  /** A replica's link to its master is up. */
  readonly linkUp: boolean;
  /** A master's replicas in state `online`. */
  readonly replicasOnline: number;
  readonly clusterOk: boolean;
}

/**
 * The harness's view of a {@link RedisCluster} for the cluster scenario, through one unrestricted connection per
 * node: who is master, who replicates whom, which master serves a slot, and whether the cluster has settled (every
 * node up and `cluster_state:ok`, every master with a replica online), so a scenario waits on conditions, never on
 * guessed failover times.
 */
export class ClusterNodes {
  readonly #cluster: RedisCluster;
  readonly #admins = new Map<RedisServer, RedisClient>();

  constructor(cluster: RedisCluster) {
    this.#cluster = cluster;
    for (const n of cluster.nodes) {
      const admin = connect(n.adminUrl, { commandTimeoutMs: 1_000 });
      admin.on("error", () => {});
      this.#admins.set(n, admin);
    }
  }

  get nodes(): readonly RedisServer[] {
    return this.#cluster.nodes;
  }

  #admin(node: RedisServer): RedisClient {
    return this.#admins.get(node) as RedisClient;
  }

  /** The node listening on `port`, if it is one of the cluster's. */
  byPort(port: number | undefined): RedisServer | undefined {
    return this.#cluster.nodes.find((n) => n.port === port);
  }

  /** What `node` says now (nothing when it is down or paused). */
  async view(node: RedisServer): Promise<NodeView> {
    const none: NodeView = {
      node,
      role: undefined,
      masterPort: undefined,
      linkUp: false,
      replicasOnline: 0,
      clusterOk: false,
    };
    if (!node.running || node.paused) return none;
    try {
      const admin = this.#admin(node);
      const [replication, cluster] = await Promise.all([
        admin.info("replication"),
        admin.call("CLUSTER", "INFO") as Promise<string>,
      ]);
      const info = parseInfo(replication);
      return {
        node,
        role: info.role === "master" || info.role === "slave" ? info.role : undefined,
        masterPort: info.master_port === undefined ? undefined : Number(info.master_port),
        linkUp: info.master_link_status === "up",
        replicasOnline: (replication.match(/^slave\d+:.*state=online/gm) ?? []).length,
        clusterOk: parseInfo(cluster).cluster_state === "ok",
      };
    } catch {
      return none;
    }
  }

  /**
   * Settled: every node running and answering with `cluster_state:ok`, `masters` masters each with a replica online,
   * every replica's link up. Returns the views when settled, otherwise undefined.
   */
  async settled(masters: number): Promise<NodeView[] | undefined> {
    const views = await Promise.all(this.#cluster.nodes.map((n) => this.view(n)));
    const ok =
      views.every((v) => v.clusterOk && v.role !== undefined) &&
      views.filter((v) => v.role === "master").length === masters &&
      views.every((v) => (v.role === "master" ? v.replicasOnline >= 1 : v.linkUp));
    return ok ? views : undefined;
  }

  /** Waits until {@link settled}; returns the views, or undefined after `timeoutMs`. */
  async waitSettled(masters: number, timeoutMs: number): Promise<NodeView[] | undefined> {
    let views: NodeView[] | undefined;
    await tryWaitUntil(
      async () => {
        views = await this.settled(masters);
        return views !== undefined;
      },
      { timeoutMs, intervalMs: 100 },
    );
    return views;
  }

  /** The master serving `slot`, as the running master `from` maps it (`CLUSTER SLOTS`). */
  async ownerOf(slot: number, from: RedisServer): Promise<RedisServer | undefined> {
    const ranges = (await this.#admin(from).call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>;
    const range = ranges.find(([lo, hi]) => slot >= lo && slot <= hi);
    return range === undefined ? undefined : this.byPort(Number(range[2][1]));
  }

  /** Disconnects the connections. */
  close(): void {
    for (const admin of this.#admins.values()) admin.disconnect();
  }
}
