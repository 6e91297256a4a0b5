import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aclRules, type ConnectOptions, connect, type RedisClient } from "@coordis/core";
import { INSTALL_HINT, RedisNotAvailableError, redisServerPath } from "./binaries.js";
import { freePort } from "./ports.js";
import { track } from "./processes.js";
import { createTlsMaterial, type TlsMaterial } from "./tls.js";

/** Extra `redis-server` configuration: `{ "maxmemory-policy": "allkeys-lru", user: ["alice", "on", ">pw"] }`. */
export type RedisConfig = Record<string, string | number | ReadonlyArray<string | number>>;

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** Port to listen on; default a free one (retried when another process takes it first). */
  port?: number;
  /** Interface to bind; default `127.0.0.1`. */
  host?: string;
  /** Extra configuration directives, passed as `--name value...` arguments. */
  config?: RedisConfig;
  /** `requirepass`: the URL then carries the password. */
  password?: string;
  /** Serve TLS only (a throwaway CA is generated unless material is given); the URL is `rediss://...?tls_ca=`. */
  tls?: boolean | TlsMaterial;
  /** Keep an append-only file so data survives {@link RedisServer.restart}; default off (`--appendonly no`). */
  appendOnly?: boolean;
  /** How long to wait for the server to accept connections; default 10 s. */
  startTimeoutMs?: number;
  /** Cluster bus offset check when choosing a free port (internal, for clusters). */
  busPortOffset?: number;
  /** Log line that means "ready"; default `Ready to accept connections`. */
  readyLine?: string;
  /** Extra raw arguments placed after the config file argument (e.g. `["--sentinel"]`). */
  extraArgs?: string[];
  /** A config file to pass as the first argument (sentinel needs one). Relative to the server's dir. */
  configFile?: string;
  /** Temp dir to use (created when missing); default a new `coordis-redis-*` dir, removed by `stop()`. */
  dir?: string;
  /**
   * Run clients as a least-privilege ACL user: the server gets a user `coordis` (random password) limited by
   * `aclRules()` of `@coordis/core` — keys and channels under `<prefix>:*` (default prefix `coordis`) and only the
   * commands Coordis needs. `url` and `client()` then authenticate as that user; `adminUrl` and `adminClient()` use
   * the unrestricted default user (for the harness and for tests that inspect the server). The user is set on the
   * command line, so it survives `restart()`. `extraRules` are appended (e.g. a pattern subscription's `&pattern`).
   */
  leastPrivilege?: boolean | LeastPrivilegeOptions;
}

/** Options of {@link StartRedisOptions.leastPrivilege}. */
export interface LeastPrivilegeOptions {
  /** Key and channel prefix(es) the user may touch; default `coordis`. */
  prefix?: string | readonly string[];
  /** Add the Cluster topology commands. */
  cluster?: boolean;
  /** Rules appended after `aclRules()`. */
  extraRules?: readonly string[];
  /** The user's password; default random. */
  password?: string;
}

/** Name of the least-privilege user of {@link StartRedisOptions.leastPrivilege}. */
export const LEAST_PRIVILEGE_USER = "coordis";

/** A running `redis-server` started by the harness. */
export interface RedisServer {
  /** Host it listens on. */
  readonly host: string;
  /** Port it listens on (the TLS port when `tls` is set). */
  readonly port: number;
  /**
   * URL for `connect()`: `redis://127.0.0.1:<port>` (or `rediss://...?tls_ca=...`); with `leastPrivilege` it carries
   * the restricted user's credentials.
   */
  readonly url: string;
  /** URL of the unrestricted default user (equal to `url` unless `leastPrivilege` is set). */
  readonly adminUrl: string;
  /** The least-privilege user's credentials, when `leastPrivilege` is set. */
  readonly user: { readonly name: string; readonly password: string } | undefined;
  /** Its working directory (temp). */
  readonly dir: string;
  /** TLS material when it serves TLS. */
  readonly tls: TlsMaterial | undefined;
  /** Pid of the current process, `undefined` once killed or stopped. */
  readonly pid: number | undefined;
  /** Whether a server process is running (paused counts as running). */
  readonly running: boolean;
  /** Whether it is paused with SIGSTOP. */
  readonly paused: boolean;
  /** A new client connected to `url` (closed by `stop()`). */
  client(options?: ConnectOptions): RedisClient;
  /** A new client of the unrestricted default user, connected to `adminUrl` (closed by `stop()`). */
  adminClient(options?: ConnectOptions): RedisClient;
  /** SIGKILL: the process dies at once; without AOF its data is gone. */
  kill(): Promise<void>;
  /** SIGSTOP: the process freezes; connections stay open but nothing is answered. */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
  /** Kill (or shut down gracefully) and start again on the same port and dir. */
  restart(options?: { graceful?: boolean }): Promise<void>;
  /** Kill the process, close clients made by `client()`, remove its dir. Idempotent. */
  stop(): Promise<void>;
}

/** The user and `redis-server` arguments of {@link StartRedisOptions.leastPrivilege}. Internal. */
export function leastPrivilegeUser(option: StartRedisOptions["leastPrivilege"]): {
  user: { name: string; password: string } | undefined;
  args: string[];
} {
  if (option === undefined || option === false) return { user: undefined, args: [] };
  const lp: LeastPrivilegeOptions = option === true ? {} : option;
  const user = { name: LEAST_PRIVILEGE_USER, password: lp.password ?? randomBytes(12).toString("hex") };
  const rules = aclRules({ ...(lp.prefix === undefined ? {} : { prefix: lp.prefix }), cluster: lp.cluster === true });
  return { user, args: ["--user", user.name, "on", `>${user.password}`, ...rules, ...(lp.extraRules ?? [])] };
}

/** `user:password@` for a URL. Internal. */
export function userInfo(user: { name: string; password: string }): string {
  return `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@`;
}

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
    const timer = setTimeout(
      () => done(new ServerStartError(`${what} did not become ready within ${timeoutMs} ms:\n${output}`, false)),
      timeoutMs,
    );
    function done(err?: Error) {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      // Keep draining output so the pipe never fills and blocks the server.
      child.stdout?.resume();
      child.stderr?.resume();
      if (err) reject(err);
      else resolve();
    }
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
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
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const bin = redisServerPath();
  if (bin === undefined) {
    const { startContainerRedis } = await import("./containers.js");
    return startContainerRedis(options);
  }
  const host = options.host ?? "127.0.0.1";
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? serverTempDir();
  const tls = options.tls === true ? await createTlsMaterial(join(dir, "tls")) : options.tls || undefined;
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
  let port = options.port ?? 0;
  let paused = false;
  const clients = new Set<RedisClient>();

  const spawnOn = async (p: number) => {
    const proc = spawn(bin, argsFor(p), { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    proc.on("error", () => {});
    track(proc);
    try {
      await waitReady(proc, readyLine, timeoutMs, `redis-server on ${host}:${p}`);
    } catch (err) {
      proc.kill("SIGKILL");
      await waitExit(proc);
      throw err;
    }
    child = proc;
    paused = false;
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
      ? `redis://${auth}${host}:${port}`
      : `rediss://${auth}${host}:${port}?tls_ca=${encodeURIComponent(tls.caCert)}`;
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
    await waitExit(proc);
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
      for (const c of clients) c.disconnect();
      clients.clear();
      await killNow("SIGKILL");
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

export { INSTALL_HINT, RedisNotAvailableError };
