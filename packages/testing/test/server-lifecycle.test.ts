import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, InvalidArgumentError, parseInfo } from "@coordis/core";
import {
  MAX_STALL_MS,
  RedisNotAvailableError,
  stallServer,
  startRedis,
  startRedisCluster,
  WaitTimeoutError,
  waitUntil,
} from "@coordis/testing";
import { describe, expect, it } from "vitest";

/** Whether something accepts TCP connections on the port. */
function listening(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("a server's state follows its process", () => {
  it("a server killed from outside reads as not running at once; pause() says so; restart() brings it back", async () => {
    const server = await startRedis();
    try {
      const pid = server.pid as number;
      process.kill(pid, "SIGKILL");
      await waitUntil("the server to read as not running", () => !server.running, 5_000);
      expect(server.pid).toBeUndefined();
      expect(server.paused).toBe(false);
      expect(() => server.pause()).toThrow(/not running/);
      await server.restart();
      expect(server.running).toBe(true);
      const client = server.client();
      expect(await client.ping()).toBe("PONG");
    } finally {
      await server.stop();
    }
  });

  it("stop() during a restart kills the server being started (its restart rejects); a stopped server stays stopped", async () => {
    const server = await startRedis();
    const port = server.port;
    const restarting = server.restart();
    await server.stop();
    await expect(restarting).rejects.toThrow(/stopped/);
    expect(server.running).toBe(false);
    expect(existsSync(server.dir)).toBe(false);
    expect(await listening(port)).toBe(false);
    await expect(server.restart()).rejects.toThrow(/was stopped: start a new one/);
    expect(await listening(port)).toBe(false);
  });

  it("a server that cannot be spawned fails at once with the reason, and a given dir is created", async () => {
    const saved = process.env.COORDIS_REDIS_SERVER;
    process.env.COORDIS_REDIS_SERVER = tmpdir(); // a directory, not an executable
    try {
      const started = Date.now();
      const err = await startRedis({ startTimeoutMs: 30_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisNotAvailableError);
      expect((err as Error).message).toContain(`COORDIS_REDIS_SERVER=${tmpdir()} is not an executable file`);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      if (saved === undefined) delete process.env.COORDIS_REDIS_SERVER;
      else process.env.COORDIS_REDIS_SERVER = saved;
    }
    const parent = mkdtempSync(join(tmpdir(), "coordis-dir-"));
    try {
      const dir = join(parent, "not", "yet");
      const server = await startRedis({ dir, startTimeoutMs: 30_000 });
      try {
        expect(server.dir).toBe(dir);
        expect(await server.client().ping()).toBe("PONG");
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it("an IPv6 host gives a URL a client can connect to", async () => {
    const server = await startRedis({ host: "::1" });
    try {
      expect(server.url).toBe(`redis://[::1]:${server.port}`);
      const client = connect(server.url);
      try {
        expect(await client.ping()).toBe("PONG");
      } finally {
        client.disconnect();
      }
    } finally {
      await server.stop();
    }
  });
});

describe("waits and stalls keep their bounds", () => {
  it("waitUntil times out even when its check never settles", async () => {
    const started = Date.now();
    const err = await waitUntil("a check that hangs", () => new Promise<boolean>(() => {}), 200).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toMatch(/had not settled/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it(`stallServer refuses more than ${MAX_STALL_MS} ms, past which other clients get BUSY instead of waiting`, async () => {
    const server = await startRedis();
    try {
      const client = server.client();
      expect(() => stallServer(client, MAX_STALL_MS + 1)).toThrow(InvalidArgumentError);
      expect(() => stallServer(client, 0)).toThrow(InvalidArgumentError);
      expect(await stallServer(client, 20)).toBe(1);
    } finally {
      await server.stop();
    }
  });
});

describe("a cluster with replicas", () => {
  it("is ready only once every replica has synced with its master", async () => {
    const cluster = await startRedisCluster({ replicasPerMaster: 1 });
    try {
      const links: string[] = [];
      for (const node of cluster.nodes) {
        const admin = connect(node.adminUrl);
        try {
          const info = parseInfo((await admin.info("replication")) as string);
          if (info.role === "slave") links.push(info.master_link_status ?? "?");
        } finally {
          admin.disconnect();
        }
      }
      expect(links).toEqual(["up", "up", "up"]);
    } finally {
      await cluster.stop();
    }
  });
});
