import { randomBytes } from "node:crypto";
import { connect } from "@coordis/core";
import type { Redis } from "ioredis";
import type { RedisCluster } from "./cluster.js";
import type { RedisServer } from "./server-types.js";

/** What {@link countCommands} measured. */
export interface CommandCounts<T> {
  /** The block's result. */
  readonly result: T;
  /**
   * Round trips: commands that clients sent during the block (from MONITOR, summed over nodes), excluding ignored
   * housekeeping. Commands a Lua script ran inside Redis are not round trips and are not counted here.
   */
  readonly roundTrips: number;
  /** Client-sent commands by name (`evalsha`, `set`...), excluding ignored ones. */
  readonly sent: Readonly<Record<string, number>>;
  /** Everything Redis executed, from `INFO commandstats` deltas, including commands run inside scripts. */
  readonly executed: Readonly<Record<string, number>>;
}

/**
 * Connection housekeeping that is not part of an operation: the harness' own INFO/ECHO, ioredis' handshake
 * (HELLO, CLIENT SETNAME, SELECT, AUTH), cluster topology refreshes and PINGs.
 */
export const DEFAULT_IGNORED_COMMANDS = [
  "info",
  "hello",
  "client",
  "cluster",
  "ping",
  "select",
  "auth",
  "command",
  "readonly",
  "quit",
  "monitor",
];

type Target = RedisServer | RedisCluster | readonly RedisServer[];

function serversOf(target: Target): RedisServer[] {
  if (Array.isArray(target)) return [...target];
  if ("nodes" in (target as RedisCluster)) return [...(target as RedisCluster).nodes];
  return [target as RedisServer];
}

function parseCommandStats(text: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m) calls.set(m[1] as string, Number(m[2]));
  }
  return calls;
}

interface NodeProbe {
  admin: Redis;
  monitor: Redis;
  sent: Map<string, number>;
  marker: string;
  markerSeen: Promise<void>;
}

async function openProbe(server: RedisServer, ignore: readonly string[]): Promise<NodeProbe> {
  const admin = connect(server.adminUrl, { commandTimeoutMs: 5_000 }) as Redis;
  admin.on("error", () => {});
  let monitor: Redis | undefined;
  let adminAddr: string | undefined;
  try {
    // MONITOR on a connection that is not ready yet can fail with ioredis' "Command queue state error":
    // wait for the admin connection first, and retry the MONITOR connection once.
    await admin.ping();
    // The harness' own commands (markers, INFO commandstats) come from this connection: never the block's.
    // (CLIENT INFO needs Redis 6.2; without it they are left to the ignore list.)
    const clientInfo = await admin.call("CLIENT", "INFO").catch(() => "");
    adminAddr = /(?:^|\s)addr=(\S+)/.exec(String(clientInfo))?.[1];
    try {
      monitor = (await admin.monitor()) as unknown as Redis;
    } catch {
      monitor = (await admin.monitor()) as unknown as Redis;
    }
  } catch (err) {
    admin.disconnect();
    throw err;
  }
  monitor.on("error", () => {});
  const sent = new Map<string, number>();
  const marker = `coordis-count-${randomBytes(8).toString("hex")}`;
  let seen!: () => void;
  const markerSeen = new Promise<void>((resolve) => {
    seen = resolve;
  });
  let armed = false;
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    const name = String(args[0] ?? "").toLowerCase();
    if (name === "echo" && args[1] === `${marker}-start`) {
      armed = true;
      return;
    }
    if (name === "echo" && args[1] === `${marker}-end`) {
      seen();
      return;
    }
    if (!armed || source === "lua" || source.endsWith(" lua")) return;
    if (adminAddr !== undefined && source.split(" ").pop() === adminAddr) return;
    if (ignore.includes(name)) return;
    sent.set(name, (sent.get(name) ?? 0) + 1);
  });
  return { admin, monitor, sent, marker, markerSeen };
}

/**
 * Counts what a block of code made Redis do, on every node of `target`: the round trips clients sent (MONITOR,
 * commands run inside Lua excluded) and everything executed (`INFO commandstats` deltas). Use servers of your own,
 * not ones shared with test files running in parallel, and connect clients before the block so their handshake
 * is not counted.
 *
 * @example
 * const { roundTrips, sent } = await countCommands(server, () => limiter.consume("user-1"));
 * expect(roundTrips).toBe(1); expect(sent.evalsha).toBe(1);
 */
export async function countCommands<T>(
  target: Target,
  fn: () => Promise<T>,
  options: { ignore?: readonly string[] } = {},
): Promise<CommandCounts<T>> {
  const ignore = options.ignore ?? DEFAULT_IGNORED_COMMANDS;
  const servers = serversOf(target).filter((s) => s.running && !s.paused);
  const opened = await Promise.allSettled(servers.map((s) => openProbe(s, ignore)));
  const probes = opened.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = opened.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed !== undefined) {
    // Never leave a MONITOR connection behind: it would keep reconnecting after the server stops.
    for (const p of probes) {
      p.monitor.disconnect();
      p.admin.disconnect();
    }
    throw failed.reason;
  }
  const stats = () =>
    Promise.all(probes.map(async (p) => parseCommandStats((await p.admin.info("commandstats")) as string)));
  try {
    // The start marker goes through the monitored server in order with every later command.
    await Promise.all(probes.map((p) => p.admin.echo(`${p.marker}-start`)));
    const before = await stats();
    const result = await fn();
    const after = await stats();
    await Promise.all(probes.map((p) => p.admin.echo(`${p.marker}-end`)));
    await Promise.all(probes.map((p) => p.markerSeen));
    const executed: Record<string, number> = {};
    after.forEach((node, i) => {
      for (const [cmd, calls] of node) {
        // The harness' INFO commandstats taken before the block ran in it (its echo markers ran outside it).
        const own = cmd === "info" ? 1 : 0;
        const delta = calls - (before[i]?.get(cmd) ?? 0) - own;
        const family = cmd.split("|")[0] as string;
        if (delta <= 0 || ignore.includes(cmd) || ignore.includes(family)) continue;
        executed[cmd] = (executed[cmd] ?? 0) + delta;
      }
    });
    const sent: Record<string, number> = {};
    let roundTrips = 0;
    for (const p of probes) {
      for (const [cmd, n] of p.sent) {
        sent[cmd] = (sent[cmd] ?? 0) + n;
        roundTrips += n;
      }
    }
    return { result, roundTrips, sent, executed };
  } finally {
    for (const p of probes) {
      p.monitor.disconnect();
      p.admin.disconnect();
    }
  }
}
