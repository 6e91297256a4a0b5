/**
 * The shapes shared by every server backend (local `redis-server` and containers): options, the running server's
 * interface and the least-privilege user's name. Types only (plus one constant), so backends import it without
 * importing each other.
 */

import type { ConnectOptions, RedisClient } from "@coordis/core";
import type { TlsMaterial } from "./tls.js";

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
  /**
   * Kill the process, close clients made by `client()`, remove its dir. Idempotent; resolves once every process of
   * the server has exited, also one a concurrent `kill()`, `stop()` or graceful `restart()` is still waiting for.
   */
  stop(): Promise<void>;
}
