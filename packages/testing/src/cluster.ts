import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { connect, parseInfo, type RedisClient, validate } from "@coordis/core";
import { Redis } from "ioredis";
import { redisCliPath } from "./binaries.js";
import { leastPrivilegeUser, userInfo } from "./least-privilege.js";
import { startRedis, urlHost } from "./redis-server.js";
import type { LeastPrivilegeOptions, RedisServer, StartRedisOptions } from "./server-types.js";

const run = promisify(execFile);

/** Options of {@link startRedisCluster}. */
export interface StartClusterOptions {
  /** Number of masters (≥ 3, as redis-cli requires); default 3. */
  masters?: number;
  /** Replicas per master, 0 or 1; default 0. */
  replicasPerMaster?: 0 | 1;
  /** `cluster-node-timeout` in ms; default 2000 (short, so failure detection in tests is quick). */
  nodeTimeoutMs?: number;
  /** Extra configuration for every node. */
  config?: StartRedisOptions["config"];
  /** How long to wait for `cluster_state:ok` on every node; default 30 s. */
  readyTimeoutMs?: number;
  /**
   * Clients authenticate as a least-privilege ACL user, as {@link StartRedisOptions.leastPrivilege}, with the
   * Cluster topology commands added; `adminUrl` / `adminClient()` stay unrestricted.
   */
  leastPrivilege?: boolean | Omit<LeastPrivilegeOptions, "cluster" | "password">;
}

/** A real Redis Cluster started by the harness. */
export interface RedisCluster {
  /** Every node, masters first in the order redis-cli assigned slots. */
  readonly nodes: readonly RedisServer[];
  /** `redis+cluster://h:p,h:p,...` listing every node (with the user's credentials under `leastPrivilege`). */
  readonly url: string;
  /** The same for the unrestricted default user. */
  readonly adminUrl: string;
  /** A cluster client of `url` (closed by `stop()`). */
  client(): RedisClient;
  /** A cluster client of `adminUrl` (closed by `stop()`). */
  adminClient(): RedisClient;
  /**
   * Waits until every running node reports `cluster_state:ok`, all 16384 slots assigned and every node known. It reads
   * what the running nodes say: just after a node was killed or paused they still report `ok` until
   * `nodeTimeoutMs` has passed, so after a fault wait for what you need (a replica reporting `role:master`, a
   * command to the slot succeeding) rather than for this.
   */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Stops every node. Idempotent. */
  stop(): Promise<void>;
}

/** Reads `CLUSTER INFO` of one node with a short-lived connection. */
function clusterInfo(server: RedisServer): Promise<Record<string, string>> {
  return nodeInfo(server, ["CLUSTER", "INFO"]);
}

/** Reads an INFO-style reply (`command`) of one node with a short-lived connection. */
async function nodeInfo(server: RedisServer, command: [string, ...string[]]): Promise<Record<string, string>> {
  const r = new Redis({
    host: server.host,
    port: server.port,
    lazyConnect: true,
    commandTimeout: 1_000,
    retryStrategy: () => null,
  });
  r.on("error", () => {});
  try {
    await r.connect();
    return parseInfo((await r.call(...command)) as string);
  } finally {
    r.disconnect();
  }
}

/**
 * Starts a real Redis Cluster: `masters × (1 + replicasPerMaster)` nodes with `--cluster-enabled yes`, joined by
 * `redis-cli --cluster create --cluster-yes`, and waits until every node reports `cluster_state:ok` and knows
 * every other node, and (with replicas) until every replica has synced with its master. Each node is a
 * {@link RedisServer}, so tests can kill, pause and restart single nodes.
 */
export async function startRedisCluster(options: StartClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 0;
  validate.integer("masters", masters, { min: 3 });
  validate.integer("replicasPerMaster", replicas, { min: 0, max: 1 });
  if (options.nodeTimeoutMs !== undefined) validate.durationMs("nodeTimeoutMs", options.nodeTimeoutMs);
  if (options.readyTimeoutMs !== undefined) validate.durationMs("readyTimeoutMs", options.readyTimeoutMs);
  const cli = redisCliPath();
  if (cli === undefined)
    throw new Error("redis-cli was not found on PATH; it is needed to create a cluster (apt-get install redis-tools)");
  const total = masters * (1 + replicas);
  // One user and password on every node, with the topology commands the cluster client needs.
  const lp = options.leastPrivilege
    ? {
        ...(options.leastPrivilege === true ? {} : options.leastPrivilege),
        cluster: true,
        password: randomBytes(12).toString("hex"),
      }
    : undefined;
  const user = leastPrivilegeUser(lp).user;
  const started = await Promise.allSettled(
    Array.from({ length: total }, () =>
      startRedis({
        busPortOffset: 10_000,
        config: {
          "cluster-enabled": "yes",
          "cluster-config-file": "nodes.conf",
          "cluster-node-timeout": options.nodeTimeoutMs ?? 2_000,
          // A replica syncs at once (diskless sync waits 5 s for more replicas by default): until it has, a
          // master killed cannot fail over to it.
          "repl-diskless-sync-delay": 0,
          ...options.config,
        },
        ...(lp === undefined ? {} : { leastPrivilege: lp }),
      }),
    ),
  );
  const nodes = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const stopAll = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed !== undefined) {
    await stopAll();
    throw failed.reason;
  }
  try {
    await run(
      cli,
      [
        "--cluster",
        "create",
        ...nodes.map((n) => `${n.host}:${n.port}`),
        "--cluster-replicas",
        String(replicas),
        "--cluster-yes",
      ],
      { timeout: 60_000 },
    );
  } catch (err) {
    await stopAll();
    throw new Error(`redis-cli --cluster create failed: ${(err as Error).message}`);
  }
  const clients = new Set<RedisClient>();
  const waitReady = async (timeoutMs = options.readyTimeoutMs ?? 30_000) => {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      const running = nodes.filter((n) => n.running && !n.paused);
      const infos = await Promise.all(running.map((n) => clusterInfo(n).catch((e: Error) => ({ error: e.message }))));
      const ok = infos.every(
        (i) =>
          (i as Record<string, string>).cluster_state === "ok" &&
          Number((i as Record<string, string>).cluster_slots_assigned) === 16384 &&
          Number((i as Record<string, string>).cluster_known_nodes) >= running.length,
      );
      if (ok) return;
      last = JSON.stringify(infos.map((i) => (i as Record<string, string>).cluster_state ?? i));
      if (Date.now() > deadline) throw new Error(`cluster not ready within ${timeoutMs} ms: ${last}`);
      await sleep(100);
    }
  };
  // Ready at start also means every replica has synced with its master, so a master killed right away fails over.
  const replicasSynced = async (timeoutMs = options.readyTimeoutMs ?? 30_000) => {
    if (replicas === 0) return;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const infos = await Promise.all(
        nodes.map((n) => nodeInfo(n, ["INFO", "replication"]).catch((e: Error) => ({ error: e.message }))),
      );
      const links = infos.filter((i) => (i as Record<string, string>).role !== "master");
      if (
        links.length === masters * replicas &&
        links.every((i) => (i as Record<string, string>).master_link_status === "up")
      ) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(`cluster replicas not synced within ${timeoutMs} ms: ${JSON.stringify(links)}`);
      }
      await sleep(50);
    }
  };
  try {
    await waitReady();
    await replicasSynced();
  } catch (err) {
    await stopAll();
    throw err;
  }
  const hosts = nodes.map((n) => `${urlHost(n.host)}:${n.port}`).join(",");
  const adminUrl = `redis+cluster://${hosts}`;
  const url = user === undefined ? adminUrl : `redis+cluster://${userInfo(user)}${hosts}`;
  const own = (c: RedisClient) => {
    clients.add(c);
    return c;
  };
  return {
    nodes,
    url,
    adminUrl,
    client: () => own(connect(url)),
    adminClient: () => own(connect(adminUrl)),
    waitReady,
    async stop() {
      for (const c of clients) c.disconnect();
      clients.clear();
      await stopAll();
    },
  };
}
