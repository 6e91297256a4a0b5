import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const fixture = join(import.meta.dirname, "fixtures", "review-sentinel-and-die.ts");

/** Runs the fixture until it printed its servers' pids and dirs. */
function runFixture(mode: "exit" | "wait"): Promise<{ pids: number[]; dirs: string[]; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
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
}

describe("a Sentinel setup never stopped leaves nothing behind", () => {
  it("the exit hook kills the master and the Sentinel and removes both their dirs", async () => {
    const { pids, dirs } = await runFixture("exit");
    expect(dirs).toHaveLength(2);
    await waitUntil("the servers to die after exit", () => pids.every((p) => !alive(p)), 5_000);
    expect(dirs.filter((d) => existsSync(d))).toEqual([]);
  });

  it("the watchdog kills them and removes both their dirs when the process is SIGKILLed", async () => {
    const { pids, dirs, child } = await runFixture("wait");
    expect(dirs.every((d) => existsSync(d))).toBe(true);
    child.kill("SIGKILL");
    await waitUntil("the watchdog to kill the servers", () => pids.every((p) => !alive(p)), 5_000);
    await waitUntil("the watchdog to remove their dirs", () => dirs.every((d) => !existsSync(d)), 5_000);
  });
});
