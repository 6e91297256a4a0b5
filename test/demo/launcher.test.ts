import { spawn } from "node:child_process";
import { connect as tcpConnect } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { freePort, waitUntil } from "@coordis/testing";
import { afterAll, describe, expect, it } from "vitest";

// `npm start` runs the launcher under npm; a SIGTERM to npm ends npm without passing the signal on. The launcher
// must then stop what it started (its Redis and replicas) by itself.
const LAUNCH = fileURLToPath(new URL("../../services/demo/src/launch.ts", import.meta.url));

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

let launcherPid: number | undefined;
afterAll(() => {
  if (launcherPid === undefined) return;
  try {
    process.kill(launcherPid, "SIGTERM");
  } catch {
    // gone, as it should be
  }
});

describe("demo launcher", () => {
  it("stops its Redis and replicas when the process that started it dies without passing a signal on", async () => {
    const port = await freePort("127.0.0.1");
    // A stand-in for npm: starts the launcher (sharing its stdout), prints the launcher's pid, then waits.
    const parentScript = `
      const { spawn } = require("node:child_process");
      const child = spawn(process.execPath, ["--conditions=@coordis/source", "--import", "tsx", ${JSON.stringify(LAUNCH)}],
        { stdio: ["ignore", "inherit", "inherit"] });
      process.stdout.write(JSON.stringify({ launcher: child.pid }) + "\\n");
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ["-e", parentScript], {
      env: { ...process.env, REPLICAS: "1", PORT: String(port), REDIS_URL: "", LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = createInterface({ input: parent.stdout });
    let redisPort: number | undefined;
    let ready = false;
    lines.on("line", (line) => {
      const pid = /^\{"launcher":(\d+)\}$/.exec(line);
      if (pid) launcherPid = Number(pid[1]);
      const redis = /redis-server started at redis:\/\/[^@]*@?127\.0\.0\.1:(\d+)/.exec(line);
      if (redis) redisPort = Number(redis[1]);
      if (line.includes("API docs")) ready = true;
    });
    await waitUntil("the demo to start", () => ready, 60_000);
    expect(redisPort).toBeDefined();
    expect(await listening(port)).toBe(true);
    expect(await listening(redisPort as number)).toBe(true);

    parent.kill("SIGKILL");
    await waitUntil("the replica to stop", async () => !(await listening(port)), 20_000);
    await waitUntil("its Redis to stop", async () => !(await listening(redisPort as number)), 20_000);
    await waitUntil(
      "the launcher to exit",
      () => {
        try {
          process.kill(launcherPid as number, 0);
          return false;
        } catch {
          return true;
        }
      },
      20_000,
    );
  }, 120_000);
});
