import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix } from "@coordis/testing";
import { afterEach, describe, expect, it } from "vitest";

const prefix = testPrefix();
const COMMAND_TIMEOUT_MS = 300;

type Outcome = { value: unknown } | { error: string };
type Msg = { type: string; results?: Record<string, Record<string, Outcome>>; unhandled?: string[] };

/** Runs test/fixtures/outage-worker.ts in its own Node process (unhandled rejections there cannot hide in Vitest). */
function startWorker(url: string) {
  const file = fileURLToPath(new URL("./fixtures/outage-worker.ts", import.meta.url));
  const child: ChildProcess = spawn(
    process.execPath,
    ["--conditions=@coordis/source", "--import", "tsx", file, url, prefix, String(COMMAND_TIMEOUT_MS)],
    { stdio: ["ignore", "inherit", "pipe", "ipc"] },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const inbox: Msg[] = [];
  const wanted: Array<{ type: string; resolve: (m: Msg) => void }> = [];
  child.on("message", (raw) => {
    const msg = raw as Msg;
    const i = wanted.findIndex((w) => w.type === msg.type);
    if (i >= 0) wanted.splice(i, 1)[0]?.resolve(msg);
    else inbox.push(msg);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    exited,
    next(type: string): Promise<Msg> {
      const i = inbox.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as Msg);
      return new Promise((resolve, reject) => {
        wanted.push({ type, resolve });
        void exited.then((code) => reject(new Error(`worker exited (code ${code}) before "${type}":\n${stderr}`)));
      });
    },
  };
}

/** What every public method documents for an unreachable Redis. */
const documented: Record<string, Outcome> = {
  get: { value: null }, // undefined: nothing in L1
  getOrSet: { value: "loaded-plain" },
  "getOrSet+tags": { value: "loaded-tagged" },
  set: { error: "RedisUnavailableError" },
  "set+tags": { error: "RedisUnavailableError" },
  delete: { error: "RedisUnavailableError" },
  invalidateTag: { error: "RedisUnavailableError" },
  clear: { error: "RedisUnavailableError" },
};

describe("Cache while Redis is unreachable: every public method, in a separate process", () => {
  let server: RedisServer | undefined;
  let proxy: FaultProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    await server?.stop();
    proxy = undefined;
    server = undefined;
  });

  for (const fault of ["server killed", "network blackholed"] as const) {
    it(`${fault}: no unhandled rejection, and each method answers as documented`, async () => {
      server = await startRedis({ leastPrivilege: true });
      proxy = await startProxy({ target: server });
      const worker = startWorker(proxy.url);
      try {
        await worker.next("ready");
        if (fault === "server killed") await server.kill();
        else proxy.blackhole();
        worker.child.send({ go: true });
        const done = await worker.next("done");
        expect(done.unhandled).toEqual([]);
        const results = done.results ?? {};
        expect(Object.keys(results).sort()).toEqual([
          "breaker/concurrent",
          "breaker/sequential",
          "patient/concurrent",
          "patient/sequential",
        ]);
        for (const [run, outcomes] of Object.entries(results)) expect(outcomes, run).toEqual(documented);
        expect(await worker.exited).toBe(0);
      } finally {
        worker.child.kill("SIGKILL");
      }
    });
  }
});
