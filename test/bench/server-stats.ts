// What the bench reads from its Redis servers: CPU time, time inside scripts, memory, and connections left open.
import { type RedisServer, tryWaitUntil, withDeadline } from "@coordis/testing";
import { Redis } from "ioredis";
import { type Live, message } from "./results.js";

/** INFO cpu: used_cpu_user + used_cpu_sys of the server, seconds (the whole process, every thread). */
async function usedCpuSeconds(client: Redis): Promise<number> {
  const info = (await client.info("cpu")) as string;
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? Number.NaN);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? Number.NaN);
  return user + sys;
}

/** INFO commandstats: `usec` of EVALSHA + EVAL, the µs the server spent running scripts (and their commands). */
async function scriptMicroseconds(client: Redis): Promise<number> {
  const info = (await client.info("commandstats")) as string;
  let total = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=\d+,usec=(\d+),/gm)) total += Number(m[1]);
  return total;
}

/** INFO memory: used_memory, bytes. */
export async function usedMemory(admin: Redis): Promise<number> {
  const info = (await admin.info("memory")) as string;
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

/** CPU and script time of the servers a scenario runs on (its topology's), summed. */
export interface ServerSampler {
  /** Redis CPU seconds (user + system). */
  redisCpu(l: Live): Promise<number>;
  /** µs Redis spent inside scripts (EVALSHA + EVAL). */
  scriptUsec(l: Live): Promise<number>;
}

/** A {@link ServerSampler} over the single server's admin client and the group's (for `group3` scenarios). */
export function serverSampler(admin: Redis, groupAdmins: readonly Redis[]): ServerSampler {
  const sum = async (l: Live, read: (client: Redis) => Promise<number>) => {
    const targets = l.scenario.topology === "group3" ? groupAdmins : [admin];
    const values = await Promise.all(targets.map(read));
    return values.reduce((a, b) => a + b, 0);
  };
  return { redisCpu: (l) => sum(l, usedCpuSeconds), scriptUsec: (l) => sum(l, scriptMicroseconds) };
}

/**
 * Logs connections still open on `server` after every scenario was torn down and every harness client closed (each
 * is given up to 1 s to go): a library that leaves a client behind would otherwise show up only as reconnect errors
 * once the server is gone.
 */
export async function reportLeftovers(server: RedisServer, log: (line: string) => void): Promise<void> {
  const probe = new Redis(server.port, server.host, { lazyConnect: true });
  probe.on("error", () => {});
  try {
    await withDeadline(probe.connect(), 5_000, "connect");
    const id = String(await probe.client("ID"));
    let others: Record<string, string>[] = [];
    const listOthers = async () => {
      const list = String(await withDeadline(probe.client("LIST"), 5_000, "CLIENT LIST"));
      others = list
        .split("\n")
        .map((line) =>
          Object.fromEntries(
            line
              .trim()
              .split(" ")
              .map((kv) => kv.split("=", 2) as [string, string]),
          ),
        )
        .filter((c) => c.id !== undefined && c.id !== id);
      return others.length === 0;
    };
    await tryWaitUntil(listOthers, { timeoutMs: 1_000, intervalMs: 50 });
    if (others.length > 0) {
      const what = others.map((c) => `name=${c.name || "-"} cmd=${c.cmd} age=${c.age}s`).join("; ");
      log(`note: ${others.length} connection(s) still open after teardown (left by a library?): ${what}`);
    }
  } catch (err) {
    log(`note: could not list leftover connections: ${message(err)}`);
  } finally {
    probe.disconnect();
  }
}
