import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import type { RedisServer } from "./server-types.js";

/** One field of a server's `INFO <section>`, or undefined when it is missing. */
export async function infoField(client: RedisClient, section: string, field: string): Promise<string | undefined> {
  const text = (await client.info(section)) as string;
  const m = new RegExp(`^${field}:(.*)$`, "m").exec(text);
  return m?.[1]?.trim();
}

/** Waits until `replica` (`admin` is a client of it) reports its link to its master up, or throws after `timeoutMs`. */
export async function waitForLink(admin: RedisClient, replica: RedisServer, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while ((await infoField(admin, "replication", "master_link_status").catch(() => undefined)) !== "up") {
    if (Date.now() > end) throw new Error(`replica on port ${replica.port} did not sync within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * Waits until every one of `replicas` replicates `master` and streams its writes: each replica's link is up, and a
 * write on the master (deleted at once) is acknowledged by all of them (`WAIT`). A link that is up may not stream yet:
 * after a diskless sync the master sends a replica its writes only once the replica's first acknowledgement arrives
 * (up to a second later), so a `WAIT` in between times out. Throws after `timeoutMs` (default 30 s).
 */
export async function waitForReplicas(
  master: RedisServer,
  replicas: readonly RedisServer[],
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const end = Date.now() + timeoutMs;
  const admins: RedisClient[] = [];
  const admin = (server: RedisServer) => {
    const c = connect(server.adminUrl, { commandTimeoutMs: 5_000 });
    admins.push(c);
    return c;
  };
  try {
    for (const replica of replicas) await waitForLink(admin(replica), replica, end - Date.now());
    if (replicas.length === 0) return;
    const m = admin(master);
    const key = `coordis-testing:sync:${process.pid}`;
    await m.set(key, "1");
    await m.del(key);
    while ((await m.wait(replicas.length, 1_000)) < replicas.length) {
      if (Date.now() > end) {
        throw new Error(`the replicas did not acknowledge the master's writes within ${timeoutMs} ms`);
      }
    }
  } finally {
    for (const c of admins) c.disconnect();
  }
}
