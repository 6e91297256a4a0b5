import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { connect, coreScripts, RedisUnavailableError, runScript } from "@coordis/core";
import {
  countCommands,
  livePids,
  RedisNotAvailableError,
  startRedis,
  startRedisCluster,
  startRedisGroup,
  waitUntil,
} from "@coordis/testing";
import type { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("startRedis", () => {
  it("starts a server with its own dir and config, and stop() kills it and removes the dir", async () => {
    const server = await startRedis({ config: { "maxmemory-policy": "allkeys-lru", maxmemory: "64mb" } });
    const pid = server.pid as number;
    expect(alive(pid)).toBe(true);
    expect(livePids()).toContain(pid);
    const client = server.client() as Redis;
    expect(await client.config("GET", "maxmemory-policy")).toEqual(["maxmemory-policy", "allkeys-lru"]);
    expect(await client.config("GET", "save")).toEqual(["save", ""]);
    expect(await client.config("GET", "appendonly")).toEqual(["appendonly", "no"]);
    await server.stop();
    expect(alive(pid)).toBe(false);
    expect(existsSync(server.dir)).toBe(false);
    expect(livePids()).not.toContain(pid);
    await server.stop(); // idempotent
  });

  it("pause freezes the server (commands time out), resume brings it back", async () => {
    const server = await startRedis();
    try {
      const client = connect(server.url, { commandTimeoutMs: 300 });
      await client.set("k", "1");
      server.pause();
      expect(server.paused).toBe(true);
      const started = Date.now();
      const err = await runScript(client, coreScripts.probe, ["{p}:v", "{p}:c"], ["x", 1000]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisUnavailableError);
      expect(Date.now() - started).toBeLessThan(2_000);
      server.resume();
      expect(await client.get("k")).toBe("1");
      client.disconnect();
    } finally {
      await server.stop();
    }
  });

  it("kill loses in-memory data, restart serves again on the same port", async () => {
    const server = await startRedis();
    try {
      const client = server.client();
      await client.set("k", "1");
      const port = server.port;
      await server.kill();
      expect(server.running).toBe(false);
      await server.restart();
      expect(server.running).toBe(true);
      expect(server.port).toBe(port);
      await waitUntil("client reconnect", async () => (await client.get("k").catch(() => "error")) !== "error", 10_000);
      expect(await client.get("k")).toBeNull();
    } finally {
      await server.stop();
    }
  });

  it("with appendOnly, a graceful restart keeps the data", async () => {
    const server = await startRedis({ appendOnly: true });
    try {
      const client = server.client();
      await client.set("durable", "yes");
      await server.restart({ graceful: true });
      await waitUntil(
        "client reconnect",
        async () => (await client.get("durable").catch(() => "error")) !== "error",
        10_000,
      );
      expect(await client.get("durable")).toBe("yes");
    } finally {
      await server.stop();
    }
  });

  it("requires the password when given one, and the URL carries it", async () => {
    const server = await startRedis({ password: "p@ss word" });
    try {
      expect(server.url).toContain(encodeURIComponent("p@ss word"));
      expect(await server.client().ping()).toBe("PONG");
      const anonymous = connect(`redis://127.0.0.1:${server.port}`, { commandTimeoutMs: 500 });
      await expect(anonymous.get("x")).rejects.toThrow(/NOAUTH/);
      anonymous.disconnect();
    } finally {
      await server.stop();
    }
  });

  it("fails with install instructions when redis-server is missing and no container runtime is allowed", async () => {
    const saved = {
      bin: process.env.COORDIS_REDIS_SERVER,
      noc: process.env.COORDIS_NO_CONTAINERS,
      path: process.env.PATH,
    };
    delete process.env.COORDIS_REDIS_SERVER;
    process.env.PATH = "/nonexistent";
    process.env.COORDIS_NO_CONTAINERS = "1";
    try {
      const err = await startRedis().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisNotAvailableError);
      expect((err as Error).message).toMatch(/apt-get install redis-server/);
      expect((err as Error).message).toMatch(/brew install redis/);
      expect((err as Error).message).toMatch(/COORDIS_NO_CONTAINERS=1 turns the container fallback off/);
      expect((err as Error).message).not.toMatch(/no container runtime/);
    } finally {
      process.env.PATH = saved.path;
      if (saved.bin === undefined) delete process.env.COORDIS_REDIS_SERVER;
      else process.env.COORDIS_REDIS_SERVER = saved.bin;
      if (saved.noc === undefined) delete process.env.COORDIS_NO_CONTAINERS;
      else process.env.COORDIS_NO_CONTAINERS = saved.noc;
    }
  });
});

describe("no server outlives the process that started it", () => {
  const fixture = join(import.meta.dirname, "fixtures", "start-and-die.ts");
  const runFixture = (mode: "exit" | "wait") =>
    new Promise<{ pids: number[]; dirs: string[]; child: ReturnType<typeof spawn> }>((resolve, reject) => {
      const child = spawn(process.execPath, ["--conditions=@coordis/source", "--import", "tsx", fixture, mode], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const line = out.split("\n")[0];
        if (out.includes("\n") && line) resolve({ ...(JSON.parse(line) as { pids: number[]; dirs: string[] }), child });
      });
      child.once("error", reject);
      child.once("exit", (code) => {
        if (!out.includes("\n")) reject(new Error(`fixture exited with ${code} before printing pids`));
      });
    });

  it("kills its servers and removes their dirs when the process exits without stopping them", async () => {
    const { pids, dirs } = await runFixture("exit");
    expect(pids).toHaveLength(2);
    expect(dirs).toHaveLength(2);
    await waitUntil("servers to die after exit", () => pids.every((p) => !alive(p)), 5_000);
    expect(dirs.filter((d) => existsSync(d))).toEqual([]);
  });

  it("kills its servers and removes their dirs when the process is SIGKILLed (watchdog)", async () => {
    const { pids, dirs, child } = await runFixture("wait");
    expect(pids.every(alive)).toBe(true);
    expect(dirs.every((d) => existsSync(d))).toBe(true);
    child.kill("SIGKILL");
    await waitUntil("watchdog to kill the servers", () => pids.every((p) => !alive(p)), 5_000);
    await waitUntil("watchdog to remove their dirs", () => dirs.every((d) => !existsSync(d)), 5_000);
  });
});

describe("groups and clusters", () => {
  it("startRedisGroup starts independent masters", async () => {
    const group = await startRedisGroup(3);
    try {
      expect(new Set(group.urls).size).toBe(3);
      const clients = group.servers.map((s) => s.client());
      await clients[0]?.set("only-on-first", "1");
      expect(await clients[1]?.get("only-on-first")).toBeNull();
      for (const c of clients) expect(((await c.info("replication")) as string).includes("role:master")).toBe(true);
    } finally {
      await group.stop();
    }
  });

  it("the shared cluster reports ok on every node", async () => {
    // CLUSTER INFO on a single node: the unrestricted URL (the shared URL's user may only run it as a cluster client).
    const url = inject("coordisAdminClusterUrl");
    const hosts = url.replace("redis+cluster://", "").split(",");
    expect(hosts).toHaveLength(3);
    for (const hostPort of hosts) {
      const node = connect(`redis://${hostPort}`) as Redis;
      expect((await node.call("CLUSTER", "INFO")) as string).toMatch(/cluster_state:ok/);
      node.disconnect();
    }
  });

  it("a node of a cluster can be paused and killed, and the cluster recovers", async () => {
    const cluster = await startRedisCluster({ masters: 3, nodeTimeoutMs: 1_000 });
    try {
      const client = cluster.client();
      await client.set("{a}x", "1");
      const victim = cluster.nodes[2];
      if (victim === undefined) throw new Error("no node");
      const observer = connect(`redis://127.0.0.1:${cluster.nodes[0]?.port}`) as Redis;
      victim.pause();
      await waitUntil(
        "cluster to notice the paused node",
        async () => ((await observer.call("CLUSTER", "INFO")) as string).includes("cluster_state:fail"),
        10_000,
      );
      victim.resume();
      await cluster.waitReady(15_000);
      await victim.kill();
      await victim.restart();
      await cluster.waitReady(15_000);
      // The killed master lost its data (no persistence), but it rejoined with its slots: every slot serves again.
      const keys = Array.from({ length: 50 }, (_, i) => `after-restart-${i}`);
      await waitUntil(
        "every slot to accept writes",
        async () =>
          (
            await Promise.all(
              keys.map((k) =>
                client.set(k, k).then(
                  () => true,
                  () => false,
                ),
              ),
            )
          ).every(Boolean),
        10_000,
      );
      expect(await Promise.all(keys.map((k) => client.get(k)))).toEqual(keys);
      observer.disconnect();
    } finally {
      await cluster.stop();
    }
  });

  it("countCommands counts round trips separately from commands run inside scripts", async () => {
    const server = await startRedis();
    try {
      const client = server.client();
      await client.ping();
      const plain = await countCommands(server, async () => {
        await client.set("a", "1");
        return client.get("a");
      });
      expect(plain).toMatchObject({ result: "1", roundTrips: 2, sent: { set: 1, get: 1 } });
      await runScript(client, coreScripts.probe, ["{x}:v", "{x}:c"], ["v", 1000]);
      const scripted = await countCommands(server, () =>
        runScript(client, coreScripts.probe, ["{x}:v", "{x}:c"], ["v", 1000]),
      );
      expect(scripted.roundTrips).toBe(1);
      expect(scripted.sent).toEqual({ evalsha: 1 });
      expect(scripted.executed).toMatchObject({ evalsha: 1, set: 1, incr: 1, pexpire: 1, time: 1 });
    } finally {
      await server.stop();
    }
  });
});
