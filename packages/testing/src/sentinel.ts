import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { userInfo } from "./least-privilege.js";
import { type FaultProxy, startProxy } from "./proxy.js";
import { serverTempDir, startRedis, startServer } from "./redis-server.js";
import { infoField, waitForLink, waitForReplicas } from "./replication.js";
import { LEAST_PRIVILEGE_USER, type RedisConfig, type RedisServer } from "./server-types.js";

/** Options of {@link startRedisSentinel}. */
export interface StartSentinelOptions {
  /** Master name Sentinel monitors; default `mymaster`. */
  masterName?: string;
  /** Replicas of the master, each its own `redis-server` (default 0). */
  replicas?: number;
  /**
   * Replicate through a {@link FaultProxy} per replica (`links[i]`), so a test can cut or slow replication
   * (blackhole it: the master's writes stop reaching that replica while both stay up). Default false.
   */
  proxiedReplication?: boolean;
  /** Sentinel's `down-after-milliseconds`; default 2000. A failover starts about this long after the master dies. */
  downAfterMs?: number;
  /** Run clients as the least-privilege ACL user on every data server (same password everywhere). */
  leastPrivilege?: boolean;
  /** AOF on every data server (`appendOnly` of {@link startRedis}). */
  appendOnly?: boolean;
  /** Extra configuration of every data server. */
  config?: RedisConfig;
}

/** A master watched by one Sentinel (quorum 1), optionally with replicas. */
export interface RedisSentinelSetup {
  /** The server that was master at start (it may have failed over since: see {@link currentMaster}). */
  readonly master: RedisServer;
  /** The replicas started with it, in order. */
  readonly replicas: readonly RedisServer[];
  /** With `proxiedReplication`: the proxy between `replicas[i]` and the master; otherwise empty. */
  readonly links: readonly FaultProxy[];
  readonly sentinel: RedisServer;
  /** Master name Sentinel monitors (`mymaster` unless given). */
  readonly masterName: string;
  /** `redis+sentinel://[user:password@]127.0.0.1:<sentinelPort>/<masterName>`. */
  readonly url: string;
  /** The same URL for the unrestricted default user. */
  readonly adminUrl: string;
  /** The data server Sentinel currently names as master (asks Sentinel). */
  currentMaster(): Promise<RedisServer>;
  /**
   * Waits until Sentinel names a master other than `from` and that server answers as a master (its
   * `ROLE` is `master`). Rejects after `timeoutMs` (default 60 s).
   */
  waitForFailover(from: RedisServer, timeoutMs?: number): Promise<RedisServer>;
  /** Waits until `replica` reports its link to the master up (`master_link_status:up`). */
  waitForReplica(replica: RedisServer, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a master, optionally replicas (directly or through a fault proxy each), and a Sentinel (quorum 1,
 * `down-after-milliseconds` 2000 unless given) monitoring it, for `redis+sentinel://` connections and failover tests.
 * Replicas are in sync before Sentinel starts, so Sentinel knows them from its first look at the master.
 */
export async function startRedisSentinel(options: StartSentinelOptions = {}): Promise<RedisSentinelSetup> {
  const masterName = options.masterName ?? "mymaster";
  const started: RedisServer[] = [];
  const links: FaultProxy[] = [];
  const admins: RedisClient[] = [];
  const adminClients = new Map<RedisServer, RedisClient>();
  const dir = serverTempDir();
  const password = options.leastPrivilege ? randomBytes(12).toString("hex") : undefined;
  // The master starts without min-replicas-to-write, which would refuse the sync write below when it asks for more
  // replicas than the setup has; it gets it once that write is acknowledged.
  const { "min-replicas-to-write": minReplicasToWrite, ...masterConfig } = options.config ?? {};
  const serverOptions = (extraArgs: string[], config = options.config) => ({
    ...(password === undefined ? {} : { leastPrivilege: { password } }),
    ...(options.appendOnly === undefined ? {} : { appendOnly: options.appendOnly }),
    // A replica syncs at once (diskless sync waits 5 s for more replicas by default): until it has, a failover has
    // nothing to promote.
    config: { "repl-diskless-sync-delay": 0, ...config },
    extraArgs,
  });
  const adminOf = (server: RedisServer) => {
    let c = adminClients.get(server);
    if (c === undefined) {
      c = connect(server.adminUrl, { commandTimeoutMs: 5_000 });
      adminClients.set(server, c);
      admins.push(c);
    }
    return c;
  };
  const stopAll = async () => {
    for (const c of admins) c.disconnect();
    for (const l of links) await l.close();
    for (const s of started) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const master = await startRedis(serverOptions([], masterConfig));
    started.push(master);
    const replicas: RedisServer[] = [];
    for (let i = 0; i < (options.replicas ?? 0); i++) {
      let target = { host: master.host, port: master.port };
      if (options.proxiedReplication) {
        const link = await startProxy({ target: master });
        links.push(link);
        target = { host: link.host, port: link.port };
      }
      const replica = await startRedis(serverOptions(["--replicaof", target.host, String(target.port)]));
      started.push(replica);
      replicas.push(replica);
    }
    const waitForReplica = (replica: RedisServer, timeoutMs = 30_000) =>
      waitForLink(adminOf(replica), replica, timeoutMs);
    // Streaming, not only linked: a failover then has an up-to-date replica to promote, and a WAIT is answered.
    await waitForReplicas(master, replicas);
    if (minReplicasToWrite !== undefined) {
      await adminOf(master).call("CONFIG", "SET", "min-replicas-to-write", String(minReplicasToWrite));
    }

    // Sentinel rewrites its config file, so it must be a writable file of its own.
    writeFileSync(
      join(dir, "sentinel.conf"),
      `sentinel monitor ${masterName} ${master.host} ${master.port} 1\n` +
        `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 2000}\n` +
        `sentinel failover-timeout ${masterName} 10000\n`,
    );
    // The Sentinel's dir is the harness' (it holds the config file): removed with it even when it is never stopped.
    const sentinel = await startServer(
      { dir, configFile: join(dir, "sentinel.conf"), extraArgs: ["--sentinel"], readyLine: "+monitor master" },
      true,
    );
    started.push(sentinel);
    const sentinelAdmin = connect(`redis://${sentinel.host}:${sentinel.port}`, {
      commandTimeoutMs: 5_000,
      redisOptions: { enableReadyCheck: false },
    });
    admins.push(sentinelAdmin);
    // Sentinel learns the replicas from the master's INFO: wait until it lists them all.
    const end = Date.now() + 30_000;
    for (;;) {
      const known = (await sentinelAdmin.call("SENTINEL", "REPLICAS", masterName)) as unknown[];
      if (known.length >= replicas.length) break;
      if (Date.now() > end) throw new Error(`Sentinel knows ${known.length} of ${replicas.length} replicas`);
      await sleep(50);
    }
    const dataServers = [master, ...replicas];
    const currentMaster = async () => {
      const [host, port] = (await sentinelAdmin.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)) as [
        string,
        string,
      ];
      const server = dataServers.find((s) => s.host === host && s.port === Number(port));
      if (server === undefined) throw new Error(`Sentinel names ${host}:${port}, not one of the servers started`);
      return server;
    };
    const auth = password === undefined ? "" : userInfo({ name: LEAST_PRIVILEGE_USER, password });
    const base = `${sentinel.host}:${sentinel.port}/${masterName}`;
    return {
      master,
      replicas,
      links,
      sentinel,
      masterName,
      url: `redis+sentinel://${auth}${base}`,
      adminUrl: `redis+sentinel://${base}`,
      currentMaster,
      async waitForFailover(from, timeoutMs = 60_000) {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const now = await currentMaster().catch(() => from);
          if (now !== from) {
            const role = await infoField(adminOf(now), "replication", "role").catch(() => undefined);
            if (role === "master") return now;
          }
          if (Date.now() > until) throw new Error(`no failover away from port ${from.port} within ${timeoutMs} ms`);
          await sleep(50);
        }
      },
      waitForReplica,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
