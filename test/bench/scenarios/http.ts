import { type ChildProcess, fork } from "node:child_process";
import { Agent, request } from "node:http";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { coordisExports } from "../coordis.js";
import type { LatencyResult, Scenario, ScenarioInstance, SetupContext, ThroughputResult } from "../types.js";
import { KEY_SPACE } from "./raw.js";

const GROUP = "http route (autocannon)";
const BASELINE = "http/fastify-unlimited";
const PEER = "http/fastify-rate-limit";
const SERVER = fileURLToPath(new URL("./http-server.ts", import.meta.url));

/** The part of autocannon's result the scenario reads (autocannon ships no types). */
interface AutocannonResult {
  "2xx": number;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

interface ServerSpec {
  mode: "plain" | "fastify-rate-limit" | "coordis";
  rules?: 1 | 2;
  batch?: "false" | "true" | "auto";
}

/** Forks the Fastify server of one row and waits until it listens. */
async function startServer(ctx: SetupContext, spec: ServerSpec): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(SERVER, [], {
    env: {
      ...process.env,
      BENCH_HTTP_MODE: spec.mode,
      BENCH_HTTP_RULES: String(spec.rules ?? 1),
      BENCH_HTTP_BATCH: spec.batch ?? "false",
      BENCH_REDIS_URL: ctx.single.url,
      BENCH_PREFIX: ctx.prefix,
    },
    // TypeScript sources under the source condition, as `npm run bench` runs (not the parent's flags: under Vitest
    // those are the test runner's).
    execArgv: ["--conditions=@coordis/source", "--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("HTTP server did not start within 30 s")), 30_000);
    child.once("message", (m: { port?: number; error?: string }) => {
      clearTimeout(timer);
      if (m.port !== undefined) resolve(m.port);
      else reject(new Error(`HTTP server: ${m.error}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`HTTP server exited with ${code}`));
    });
  });
  return { child, port };
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.send("stop");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** One GET /r on a keep-alive agent; resolves with the status code. */
function get(agent: Agent, port: number, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/r", agent, headers: { "x-key": `user-${n % KEY_SPACE}` } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The server process' CPU time so far, µs. */
function serverCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (m: { cpuUs?: number }) => {
      if (m.cpuUs === undefined) return;
      child.off("message", onMessage);
      resolve(m.cpuUs);
    };
    child.on("message", onMessage);
    child.send("cpu");
  });
}

function instance(id: string, port: number, child: ChildProcess): ScenarioInstance {
  let seq = 0;
  return {
    async throughput(durationMs: number, concurrency: number): Promise<ThroughputResult> {
      const cpuBefore = await serverCpu(child);
      const started = performance.now();
      const result = await autocannon({
        url: `http://127.0.0.1:${port}/r`,
        connections: concurrency,
        duration: durationMs / 1000,
        requests: [
          {
            setupRequest: (req: { headers?: Record<string, string> }) => ({
              ...req,
              headers: { ...req.headers, "x-key": `user-${seq++ % KEY_SPACE}` },
            }),
          },
        ],
      });
      const failures = result.non2xx + result.errors + result.timeouts;
      // The harness' CPU columns are this process (autocannon); the Fastify process' own CPU per request is the
      // figure that survives a loaded machine best, so it is logged per round.
      const cpuUs = (await serverCpu(child)) - cpuBefore;
      if (result["2xx"] > 0) {
        process.stderr.write(`    ${id}: server CPU ${(cpuUs / result["2xx"]).toFixed(1)} µs/req\n`);
      }
      return {
        ops: result["2xx"],
        elapsedMs: result.duration > 0 ? result.duration * 1000 : performance.now() - started,
        errors: failures,
        ...(failures > 0
          ? { error: `${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts` }
          : {}),
      };
    },
    async latency(durationMs: number): Promise<LatencyResult> {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const samplesMs: number[] = [];
      const end = performance.now() + durationMs;
      try {
        while (performance.now() < end) {
          const t = performance.now();
          const status = await get(agent, port, seq++);
          if (status !== 200) return { samplesMs, errors: 1, error: `status ${status}` };
          samplesMs.push(performance.now() - t);
        }
      } finally {
        agent.destroy();
      }
      return { samplesMs, errors: 0 };
    },
    async countOps(count: number): Promise<void> {
      // 50 in flight, where batching happens (the limiter's figure per request is what is counted).
      const agent = new Agent({ keepAlive: true, maxSockets: 50 });
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const status = await get(agent, port, next++);
          if (status !== 200) throw new Error(`status ${status}`);
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(50, count) }, worker));
      } finally {
        agent.destroy();
      }
    },
    async teardown() {
      await stopServer(child);
    },
  };
}

function row(id: string, name: string, kind: Scenario["kind"], spec: ServerSpec, reference?: string): Scenario {
  const batched = spec.batch === "true" || spec.batch === "auto";
  return {
    id,
    group: GROUP,
    name,
    kind,
    topology: "single",
    unit: "req",
    isolated: GROUP,
    ...(kind === "raw" ? {} : { baseline: BASELINE }),
    ...(reference === undefined ? {} : { reference }),
    ...(kind === "coordis"
      ? {
          roundTrips: 1,
          roundTripsBound: batched ? ("at-most" as const) : ("exact" as const),
          roundTripConcurrency: "closed-loop" as const,
          roundTripsNote: batched
            ? "one script call per request, or fewer when requests in flight share a batch"
            : "one script call per request checks every rule",
        }
      : {}),
    async setup(ctx) {
      if (spec.mode === "coordis") await coordisExports("fastify", ["coordis"]);
      const { child, port } = await startServer(ctx, spec);
      return instance(id, port, child);
    },
  };
}

/**
 * HTTP rows, in a part of the run of their own (their own Redis server; no other scenario set up while they run):
 * one Fastify process per row (forked), autocannon in the bench process with the closed loop's
 * connections (50), keys cycling over 10 000 in the `x-key` header, limits that admit every request. "× raw" is the
 * unlimited route of the same round; "× ref" @fastify/rate-limit (Redis store) for the unbatched Coordis rows and the
 * unbatched row of the same rules for the batched ones.
 */
export function httpScenarios(): Scenario[] {
  return [
    row(BASELINE, "Fastify route, no limiter", "raw", { mode: "plain" }),
    row(PEER, "@fastify/rate-limit 11, Redis store", "peer", { mode: "fastify-rate-limit" }),
    row("http/coordis-1-rule", "@coordis/fastify 1 rule", "coordis", { mode: "coordis", rules: 1 }, PEER),
    row(
      "http/coordis-1-rule-batched",
      "@coordis/fastify 1 rule, batch: true",
      "coordis",
      { mode: "coordis", rules: 1, batch: "true" },
      "http/coordis-1-rule",
    ),
    row(
      "http/coordis-1-rule-auto",
      "@coordis/fastify 1 rule, batch: auto (default)",
      "coordis",
      { mode: "coordis", rules: 1, batch: "auto" },
      PEER,
    ),
    row("http/coordis-2-rules", "@coordis/fastify 2 rules", "coordis", { mode: "coordis", rules: 2 }, PEER),
    row(
      "http/coordis-2-rules-batched",
      "@coordis/fastify 2 rules, batch: true",
      "coordis",
      { mode: "coordis", rules: 2, batch: "true" },
      "http/coordis-2-rules",
    ),
  ];
}
