import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConnectOptions, connect, type RedisClient, validate } from "@coordis/core";
import { INSTALL_HINT, RedisNotAvailableError, redisServerPath } from "./binaries.js";
import { leastPrivilegeUser, userInfo } from "./least-privilege.js";
import { freePort } from "./ports.js";
import { track } from "./processes.js";
import type { RedisConfig, RedisServer, StartRedisOptions } from "./server-types.js";
import { createTlsMaterial } from "./tls.js";

/**
 * A new temp dir for a server: `coordis-redis-[<COORDIS_RUN_ID>-]XXXXXX`. The run id lets `npm test` check that
 * none of *its* servers survived, even while other test runs share the machine.
 */
export function serverTempDir(): string {
  const run = process.env.COORDIS_RUN_ID;
  return mkdtempSync(join(tmpdir(), `coordis-redis-${run ? `${run}-` : ""}`));
}

function configArgs(config: RedisConfig | undefined): string[] {
  const args: string[] = [];
  for (const [name, value] of Object.entries(config ?? {})) {
    args.push(`--${name}`);
    if (Array.isArray(value)) args.push(...value.map(String));
    else args.push(String(value));
  }
  return args;
}

class ServerStartError extends Error {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
  }
}

function waitReady(child: ChildProcess, readyLine: string, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = "";
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8192);
      if (output.includes(readyLine)) done();
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(
        new ServerStartError(
          `${what} exited during start (code ${code}, signal ${signal}):\n${output.trim()}`,
          /Address already in use|bind: /.test(output),
        ),
      );
    // A process that could not be spawned at all (no such binary or working dir): its error says why, at once.
    const onError = (err: Error) => done(new ServerStartError(`${what} could not be started: ${err.message}`, false));
    const timer = setTimeout(
      () => done(new ServerStartError(`${what} did not become ready within ${timeoutMs} ms:\n${output}`, false)),
      timeoutMs,
    );
    function done(err?: Error) {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      child.off("error", onError);
      // Keep draining output so the pipe never fills and blocks the server.
      child.stdout?.resume();
      child.stderr?.resume();
      if (err) reject(err);
      else resolve();
    }
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}

function waitExit(child: ChildProcess): Promise<void> {
  // A process that was never spawned (pid undefined) has no exit to wait for.
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** `host` as it goes into a URL: an IPv6 address in brackets. */
export function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * Starts a real `redis-server` on a free port, with `--save "" --appendonly no` and its own temp dir, and waits
 * until it accepts connections. Falls back to a container (testcontainers) when `redis-server` is not installed
 * and a container runtime is reachable; otherwise fails with install instructions.
 *
 * @example
 * const redis = await startRedis({ config: { "maxmemory-policy": "allkeys-lru" } });
 * const client = redis.client();
 * await redis.pause(); ... redis.resume();
 * await redis.stop();
 */
export function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  return startServer(options, options.dir === undefined);
}

/**
 * {@link startRedis}; with `ownDir` the server's dir is the harness' even when `options.dir` names it (a Sentinel's,
 * written before the start): `stop()`, the exit hook and the watchdog remove it, as they remove a dir of its own.
 * Internal.
 */
export async function startServer(options: StartRedisOptions, ownDir: boolean): Promise<RedisServer> {
  // Port 0 would make redis-server listen on no TCP port at all.
  if (options.port !== undefined) validate.integer("port", options.port, { min: 1, max: 65535 });
  if (options.startTimeoutMs !== undefined) validate.durationMs("startTimeoutMs", options.startTimeoutMs);
  const bin = redisServerPath();
  if (bin === undefined) {
    const { startContainerRedis } = await import("./containers.js");
    return startContainerRedis(options);
  }
  const host = options.host ?? "127.0.0.1";
  const dir = options.dir ?? serverTempDir();
  if (options.dir !== undefined) mkdirSync(dir, { recursive: true });
  let tls: Awaited<ReturnType<typeof createTlsMaterial>> | undefined;
  try {
    tls = options.tls === true ? await createTlsMaterial(join(dir, "tls")) : options.tls || undefined;
  } catch (err) {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const readyLine = options.readyLine ?? "Ready to accept connections";
  const timeoutMs = options.startTimeoutMs ?? 10_000;
  const { user, args: userArgs } = leastPrivilegeUser(options.leastPrivilege);

  const argsFor = (port: number) => [
    ...(options.configFile === undefined ? [] : [options.configFile]),
    ...(tls === undefined
      ? ["--port", String(port)]
      : [
          "--port",
          "0",
          "--tls-port",
          String(port),
          "--tls-cert-file",
          tls.cert,
          "--tls-key-file",
          tls.key,
          "--tls-ca-cert-file",
          tls.caCert,
          "--tls-auth-clients",
          "no",
        ]),
    "--bind",
    host,
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    options.appendOnly ? "yes" : "no",
    "--daemonize",
    "no",
    ...(options.password === undefined ? [] : ["--requirepass", options.password]),
    ...configArgs(options.config),
    ...userArgs,
    ...(options.extraArgs ?? []),
  ];

  let child: ChildProcess | undefined;
  /** A process still starting (the first start or a restart), which stop() must not leave behind. */
  let starting: ChildProcess | undefined;
  /** Processes a kill() or restart() signalled and still waits for (a graceful one can serve on for a moment). */
  const dying = new Set<ChildProcess>();
  let stopped = false;
  let port = options.port ?? 0;
  let paused = false;
  const clients = new Set<RedisClient>();

  const spawnOn = async (p: number) => {
    if (stopped) throw new Error(`redis-server on port ${p} was stopped: start a new one with startRedis()`);
    const proc = spawn(bin, argsFor(p), { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    proc.on("error", () => {});
    track(proc, ownDir ? dir : undefined);
    starting = proc;
    try {
      await waitReady(proc, readyLine, timeoutMs, `redis-server on ${host}:${p}`);
      if (stopped) throw new Error(`redis-server on port ${p} was stopped while it started`);
    } catch (err) {
      proc.kill("SIGKILL");
      await waitExit(proc);
      throw err;
    } finally {
      if (starting === proc) starting = undefined;
    }
    child = proc;
    paused = false;
    // A server that dies on its own (crash, OOM kill, SHUTDOWN, a kill from outside) reads as not running.
    proc.once("exit", () => {
      if (child !== proc) return;
      child = undefined;
      paused = false;
    });
  };

  for (let attempt = 0; ; attempt++) {
    if (options.port === undefined) port = await freePort(host, options.busPortOffset);
    try {
      await spawnOn(port);
      break;
    } catch (err) {
      if (err instanceof ServerStartError && err.portInUse && options.port === undefined && attempt < 8) continue;
      if (ownDir) rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  const urlWith = (auth: string) =>
    tls === undefined
      ? `redis://${auth}${urlHost(host)}:${port}`
      : `rediss://${auth}${urlHost(host)}:${port}?tls_ca=${encodeURIComponent(tls.caCert)}`;
  const adminUrl = urlWith(options.password === undefined ? "" : `:${encodeURIComponent(options.password)}@`);
  const url = user === undefined ? adminUrl : urlWith(userInfo(user));
  const own = (client: RedisClient) => {
    clients.add(client);
    client.once("end", () => clients.delete(client));
    return client;
  };

  const killNow = async (signal: NodeJS.Signals) => {
    const proc = child;
    if (proc === undefined) return;
    child = undefined;
    if (paused) proc.kill("SIGCONT");
    paused = false;
    proc.kill(signal);
    dying.add(proc);
    try {
      await waitExit(proc);
    } finally {
      dying.delete(proc);
    }
  };

  const server: RedisServer = {
    host,
    port,
    url,
    adminUrl,
    user,
    dir,
    tls,
    get pid() {
      return child?.pid;
    },
    get running() {
      return child !== undefined;
    },
    get paused() {
      return paused;
    },
    client: (connectOptions?: ConnectOptions) => own(connect(url, connectOptions)),
    adminClient: (connectOptions?: ConnectOptions) => own(connect(adminUrl, connectOptions)),
    kill: () => killNow("SIGKILL"),
    pause() {
      if (child === undefined) throw new Error(`redis-server on port ${port} is not running`);
      child.kill("SIGSTOP");
      paused = true;
    },
    resume() {
      if (child === undefined) throw new Error(`redis-server on port ${port} is not running`);
      child.kill("SIGCONT");
      paused = false;
    },
    async restart(restartOptions = {}) {
      await killNow(restartOptions.graceful ? "SIGTERM" : "SIGKILL");
      // The port was ours a moment ago; Redis binds with SO_REUSEADDR, so TIME_WAIT does not block it.
      await spawnOn(port);
    },
    async stop() {
      stopped = true;
      for (const c of clients) c.disconnect();
      clients.clear();
      // A restart still starting is killed too (its restart() then rejects), so nothing runs on after stop().
      const pending = starting;
      if (pending !== undefined) {
        if (paused) pending.kill("SIGCONT");
        pending.kill("SIGKILL");
        await waitExit(pending);
      }
      await killNow("SIGKILL");
      // One a concurrent kill(), restart() or stop() is still waiting for (SIGTERM of a graceful restart: Redis
      // serves on until its next cron tick) is killed and waited for too, so stop() resolves with nothing left.
      await Promise.all(
        [...dying].map((proc) => {
          proc.kill("SIGKILL");
          return waitExit(proc);
        }),
      );
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

export { INSTALL_HINT, RedisNotAvailableError };
