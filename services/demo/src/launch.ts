/**
 * `npm start`: runs the demo locally. Starts a redis-server on a free port (unless `REDIS_URL` is set), launches
 * `REPLICAS` replicas (default 3) on consecutive ports from `PORT` (default 3000) with ids r1, r2..., prints the
 * URLs, and stops everything on Ctrl-C / SIGTERM (or when a replica dies).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { DEFAULT_PORT, randomToken } from "./config.js";

/** A running local stack. */
export interface Stack {
  readonly urls: string[];
  readonly redisUrl: string;
  readonly adminToken: string;
  /** Resolves when a replica exited on its own (the stack is then being stopped). */
  readonly exited: Promise<void>;
  stop(): Promise<void>;
}

/** Options of {@link launch}; unset ones come from the environment. */
export interface LaunchOptions {
  replicas?: number;
  basePort?: number;
  redisUrl?: string;
  env?: NodeJS.ProcessEnv;
  /** Where replica output goes (default this process' stdout, each line prefixed with the replica id). */
  log?: (line: string) => void;
}

const SERVER = fileURLToPath(new URL("./server.ts", import.meta.url));
const SERVER_JS = fileURLToPath(new URL("./server.js", import.meta.url));

function replicaArgs(): string[] {
  // Run from TypeScript sources (no build) when launched through tsx; from dist/ otherwise.
  if (import.meta.url.endsWith(".ts")) return ["--conditions=@coordis/source", "--import", "tsx", SERVER];
  return [SERVER_JS];
}

/** Starts Redis (when needed) and the replicas; resolves once every replica listens. */
export async function launch(options: LaunchOptions = {}): Promise<Stack> {
  const env = options.env ?? process.env;
  const count = options.replicas ?? Number(env.REPLICAS ?? 3);
  const basePort = options.basePort ?? Number(env.PORT ?? DEFAULT_PORT);
  if (!Number.isInteger(count) || count < 1 || count > 32) throw new Error("REPLICAS must be an integer from 1 to 32");
  if (!Number.isInteger(basePort) || basePort < 1 || basePort + count - 1 > 65_535) throw new Error("PORT is invalid");
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));

  let stopRedis: (() => Promise<void>) | undefined;
  let redisUrl = options.redisUrl ?? env.REDIS_URL;
  if (!redisUrl) {
    // The testing harness finds redis-server, picks a free port and kills the server if this process dies.
    const { startRedis } = await import("@coordis/testing");
    const server = await startRedis({ config: { "maxmemory-policy": "noeviction" } });
    redisUrl = server.url;
    stopRedis = () => server.stop();
    log(`redis-server started at ${redisUrl}`);
  }
  const adminToken = env.ADMIN_TOKEN || randomToken();

  const children: ChildProcess[] = [];
  let stopping = false;
  let onExit: () => void = () => {};
  const exited = new Promise<void>((resolve) => {
    onExit = resolve;
  });

  const stop = async () => {
    stopping = true;
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = once(child, "exit");
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await gone;
        clearTimeout(timer);
      }),
    );
    await stopRedis?.();
  };

  const ready: Promise<string>[] = [];
  for (let i = 0; i < count; i++) {
    const id = `r${i + 1}`;
    const child = spawn(process.execPath, replicaArgs(), {
      env: {
        ...env,
        PORT: String(basePort + i),
        REPLICA_ID: id,
        REDIS_URL: redisUrl,
        ADMIN_TOKEN: adminToken,
        COORDIS_EXIT_WITH_PARENT: "1",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.push(child);
    ready.push(
      new Promise<string>((resolve, reject) => {
        const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
        lines.on("line", (line) => {
          if (line.startsWith('{"event":"listening"')) resolve((JSON.parse(line) as { url: string }).url);
          else log(`[${id}] ${line}`);
        });
        createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => log(`[${id}] ${line}`));
        child.once("exit", (code, signal) => {
          reject(new Error(`replica ${id} exited (${signal ?? code}) before listening`));
          if (!stopping) {
            log(`replica ${id} exited (${signal ?? code}); stopping the demo`);
            void stop().then(onExit);
          }
        });
      }),
    );
  }
  let urls: string[];
  try {
    urls = await Promise.all(ready);
  } catch (err) {
    await stop();
    throw err;
  }
  return { urls, redisUrl, adminToken, exited, stop };
}

/** The process that started this one, read when this module loaded (before anything could have reparented it). */
const STARTED_BY = process.ppid;

/**
 * Calls `stop` once the process that started this one is gone (this process was handed to another parent). A
 * SIGTERM sent to `npm start` ends npm without passing the signal on; without this the demo's Redis and replicas
 * would run on, orphaned. The parent is the one this process had when it started (`startedBy`), not the one it has
 * when the watch is armed: a parent that died in between is caught at the first check.
 */
export function stopWithParent(stop: () => void, startedBy = STARTED_BY): void {
  const timer = setInterval(() => {
    if (process.ppid === startedBy) return;
    clearInterval(timer);
    stop();
  }, 250);
  timer.unref();
}

/** Issues `count` API keys through the admin endpoint of `url` (`POST /v1/admin/keys`, at most 100 per call). */
export async function issueKeys(url: string, adminToken: string, count: number): Promise<string[]> {
  const keys: string[] = [];
  while (keys.length < count) {
    const res = await fetch(`${url}/v1/admin/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ count: Math.min(100, count - keys.length) }),
    });
    if (res.status !== 201) throw new Error(`issuing API keys at ${url}: HTTP ${res.status} ${await res.text()}`);
    keys.push(...((await res.json()) as { keys: Array<{ key: string }> }).keys.map((k) => k.key));
  }
  return keys;
}

async function main(): Promise<void> {
  const stack = await launch();
  const [first] = stack.urls as [string, ...string[]];
  let stopping = false;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write("\nstopping the demo…\n");
    await stack.stop();
    process.exit(code);
  };
  // Armed before anything says the demo is up: whoever reads that may stop us (or our parent) at once.
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  stopWithParent(() => void shutdown(0));
  // Stops what it started when the stack cannot be used, instead of leaving it to the replicas' and Redis' watchdogs.
  const [apiKey] = await issueKeys(first, stack.adminToken, 1).catch(async (err: unknown) => {
    await stack.stop();
    throw err;
  });
  const lines = [
    "",
    "Coordis demo is running:",
    ...stack.urls.map((u, i) => `  replica r${i + 1}  ${u}/`),
    "",
    `  dashboard  ${first}/        (each replica serves it; open two to watch them share state)`,
    `  API docs   ${first}/docs`,
    `  metrics    ${first}/metrics`,
    `  Redis      ${stack.redisUrl}`,
    `  admin      Authorization: Bearer ${stack.adminToken}`,
    "",
    `  API key    ${apiKey}   (more: POST /v1/admin/keys with the admin token)`,
    "",
    `Try: curl -X POST ${first}/v1/scores -H 'content-type: application/json' -H 'x-api-key: ${apiKey}' \\`,
    `       -d '{"playerId":"ada","name":"Ada","score":4200}'`,
    "Load test (in another terminal): npm run loadtest        Stop: Ctrl-C",
    "",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  await stack.exited;
  if (!stopping) process.exit(1);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`demo failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
