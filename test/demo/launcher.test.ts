import { spawn } from "node:child_process";
import { connect as tcpConnect } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { localUrl, stopWithParent } from "@coordis/demo";
import { freePort, waitUntil } from "@coordis/testing";
import { afterAll, describe, expect, it } from "vitest";

// `npm start` runs the launcher under npm; a SIGTERM to npm ends npm without passing the signal on. The launcher
// must then stop what it started (its Redis and replicas) by itself.
const LAUNCH = fileURLToPath(new URL("../../services/demo/src/launch.ts", import.meta.url));

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

let launcherPid: number | undefined;
let ipv6LauncherPid: number | undefined;
afterAll(() => {
  for (const pid of [launcherPid, ipv6LauncherPid]) {
    if (pid === undefined) continue;
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // gone, as it should be
    }
  }
});

describe("demo URLs", () => {
  it("brackets IPv6 hosts and reaches wildcard hosts through loopback", () => {
    const cases: Array<[string, string]> = [
      ["127.0.0.1", "http://127.0.0.1:3000"],
      ["localhost", "http://localhost:3000"],
      ["demo.internal", "http://demo.internal:3000"],
      ["0.0.0.0", "http://127.0.0.1:3000"],
      ["::1", "http://[::1]:3000"],
      ["[::1]", "http://[::1]:3000"],
      ["::", "http://[::1]:3000"],
      ["0:0:0:0:0:0:0:0", "http://[::1]:3000"],
      ["fd00::a:1", "http://[fd00::a:1]:3000"],
      ["::ffff:10.0.0.1", "http://[::ffff:a00:1]:3000"],
    ];
    for (const [host, url] of cases) {
      expect(localUrl(host, 3000), host).toBe(url);
      expect(new URL(`${localUrl(host, 3000)}/v1/admin/keys`).port, host).toBe("3000");
    }
  });
});

describe("demo launcher", () => {
  it("stops when the process that started it died before the watch was armed", async () => {
    // The launcher prints that the demo is up; whoever reads it may kill the launcher's parent before the launcher
    // runs its next line. The watch must then compare with the parent the process started with, not the one it has.
    let stopped = false;
    stopWithParent(() => {
      stopped = true;
    }, process.ppid + 1);
    await waitUntil("the watch to call stop", () => stopped, 5_000);
  });

  it("starts with an IPv6 HOST: replicas bind it, and the launcher issues its key and prints bracketed URLs", async () => {
    const port = await freePort("::1");
    const launcher = spawn(process.execPath, ["--conditions=@coordis/source", "--import", "tsx", LAUNCH], {
      env: { ...process.env, REPLICAS: "1", HOST: "::1", PORT: String(port), REDIS_URL: "", LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    ipv6LauncherPid = launcher.pid;
    const output: string[] = [];
    let exited = false;
    launcher.once("exit", () => {
      exited = true;
    });
    for (const stream of [launcher.stdout, launcher.stderr]) {
      createInterface({ input: stream }).on("line", (line) => output.push(line));
    }
    const started = () => output.some((line) => line.includes("API docs"));
    await waitUntil("the demo to start or the launcher to exit", () => started() || exited, 60_000);
    expect(started(), output.join("\n")).toBe(true);
    const text = output.join("\n");
    expect(text).toContain(`replica r1  http://[::1]:${port}/`);
    expect(text).toMatch(/API key {4}\S+\.\S+ /);
    expect((await fetch(`http://[::1]:${port}/healthz`)).status).toBe(200);
    expect(await listening(port, "::1")).toBe(true);

    launcher.kill("SIGTERM");
    await waitUntil("the launcher to exit", () => exited, 20_000);
    expect(await listening(port, "::1")).toBe(false);
  }, 120_000);

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
