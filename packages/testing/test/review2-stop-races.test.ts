import { existsSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { startRedis } from "@coordis/testing";
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

/** Whether a process with this pid still exists (a reaped child no longer does). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("stop() leaves nothing running, whatever else is in flight", () => {
  it("stop() during a graceful restart's shutdown resolves only once the old process is gone", async () => {
    const server = await startRedis();
    const port = server.port;
    const pid = server.pid as number;
    // SIGTERM: Redis shuts down on its next cron tick, so the old process still serves for a moment.
    const restarting = server.restart({ graceful: true });
    const outcome = restarting.then(
      () => new Error("restart() resolved"),
      (err: unknown) => err,
    );
    await server.stop();
    expect(alive(pid)).toBe(false);
    expect(await listening(port)).toBe(false);
    expect(existsSync(server.dir)).toBe(false);
    expect(String(await outcome)).toMatch(/was stopped/);
    expect(server.running).toBe(false);
  });

  it("a second stop() while the first is still killing resolves only once the process is gone", async () => {
    const server = await startRedis();
    const pid = server.pid as number;
    const first = server.stop();
    await server.stop();
    expect(alive(pid)).toBe(false);
    expect(existsSync(server.dir)).toBe(false);
    await first;
  });

  it("stop() right after an unawaited kill() resolves only once the process is gone", async () => {
    const server = await startRedis();
    const pid = server.pid as number;
    const killing = server.kill();
    await server.stop();
    expect(alive(pid)).toBe(false);
    await killing;
  });
});
