/**
 * What the end-to-end failover tests share (test/sentinel/, test/cluster-e2e/): recovery probes, and looks at one
 * server through short-lived admin connections.
 */
import { LEAST_PRIVILEGE_USER, type RedisServer, waitUntil } from "@coordis/testing";

/** How long a probe keeps trying before it gives up (a failed recovery is then reported by the test). */
export const PROBE_MS = 15_000;
/** Long blocking reads: only following the failover, not a read's own timeout, can bring them back in time. */
export const BLOCK_MS = 30_000;

/** What a recovery probe found: how long after the promotion it first succeeded, or why it never did. */
export type Probe<T = undefined> = { ok: true; afterMs: number; value: T } | { ok: false; error: unknown };

/** Tries `attempt` until it returns something (not undefined), for at most {@link PROBE_MS}. */
export async function probe<T>(since: number, what: string, attempt: () => Promise<T | undefined>): Promise<Probe<T>> {
  let value: T | undefined;
  try {
    await waitUntil(
      what,
      async () => {
        value = await attempt().catch(() => undefined);
        return value !== undefined;
      },
      { timeoutMs: PROBE_MS, intervalMs: 50 },
    );
    return { ok: true, afterMs: performance.now() - since, value: value as T };
  } catch (error) {
    return { ok: false, error };
  }
}

/** One command on one server as the unrestricted user (a short-lived standalone connection). */
export async function onNode<T>(server: RedisServer, ...args: [string, ...(string | number)[]]): Promise<T> {
  const admin = server.adminClient();
  try {
    return (await admin.call(...args)) as T;
  } finally {
    admin.disconnect();
  }
}

/** One INFO section of a server, as fields. */
export async function info(server: RedisServer, section: string): Promise<Record<string, string>> {
  const text = await onNode<string>(server, "INFO", section);
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(":");
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

/** The replica has everything the master wrote so far (so the promotion loses nothing written before the freeze). */
export async function replicaCaughtUp(master: RedisServer, replica: RedisServer): Promise<void> {
  const target = Number((await info(master, "replication")).master_repl_offset ?? -1);
  await waitUntil(
    "the replica to catch up",
    async () => Number((await info(replica, "replication")).slave_repl_offset ?? -1) >= target,
    10_000,
  );
}

/** Client-list lines of a server for the application's (least-privilege) connections, optionally one command. */
export async function appConnections(server: RedisServer, cmd?: string): Promise<string[]> {
  const list = await onNode<string>(server, "CLIENT", "LIST");
  return list
    .split("\n")
    .filter((line) => line.includes(` user=${LEAST_PRIVILEGE_USER} `))
    .filter((line) => cmd === undefined || line.includes(` cmd=${cmd} `));
}
