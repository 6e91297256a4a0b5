import { createServer, type Server, type Socket } from "node:net";
import { InvalidArgumentError, parseRedisUrl } from "@coordis/core";
import { mulberry32 } from "./prng.js";
import { ProxyLinks, reset } from "./proxy-links.js";

/** Where a {@link FaultProxy} forwards to: a host and port, optionally with the URL clients would use directly. */
export interface ProxyTarget {
  /** Host of the Redis node. */
  readonly host: string;
  /** Port of the Redis node. */
  readonly port: number;
  /**
   * The node's own URL (a {@link RedisServer} has one): the proxy's URL then keeps its scheme, credentials, db and
   * query parameters, with only host and port replaced.
   */
  readonly url?: string;
}

/** Options of {@link startProxy}. */
export interface StartProxyOptions {
  /** The Redis node: `{ host, port }`, a started `RedisServer`, or a `redis://` / `rediss://` URL. */
  target: ProxyTarget | string;
  /** Port to listen on; default a free one chosen by the OS. */
  listenPort?: number;
  /** Interface to listen on; default `127.0.0.1`. */
  host?: string;
  /** Seed of the jitter random numbers (default: `Math.random`), so a jittered run can be replayed. */
  seed?: number;
}

/** Counters and current fault state of a {@link FaultProxy}. */
export interface ProxyStats {
  /** Client connections currently open through the proxy. */
  readonly connections: number;
  /** Client connections accepted since start. */
  readonly accepted: number;
  /** Connections the proxy cut: `dropConnections()`, `heal()` resetting streams that lost bytes, `close()`. */
  readonly dropped: number;
  /** Bytes forwarded from clients to the target. */
  readonly bytesToTarget: number;
  /** Bytes forwarded from the target to clients. */
  readonly bytesToClients: number;
  /** Bytes thrown away while blackholed (both directions), including data in flight when the blackhole began. */
  readonly bytesDiscarded: number;
  /** Bytes currently held back by latency, not yet delivered. */
  readonly bytesInFlight: number;
  /** Latency currently added to each direction, ms. */
  readonly latencyMs: number;
  /** Jitter currently applied around `latencyMs`, ms. */
  readonly jitterMs: number;
  /** Whether traffic is blackholed (partition). */
  readonly blackholed: boolean;
  /** Whether new connections are refused. */
  readonly refusing: boolean;
}

/**
 * A TCP proxy between clients and one Redis node that injects network faults on command. It forwards bytes and
 * never parses them, so TLS (`rediss://`) passes through untouched.
 */
export interface FaultProxy {
  /** URL for `connect()`: the target's URL (scheme, credentials, db, params kept) with the proxy's host and port. */
  readonly url: string;
  /** Host the proxy listens on. */
  readonly host: string;
  /** Port the proxy listens on. */
  readonly port: number;
  /** The node it forwards to. */
  readonly target: { readonly host: string; readonly port: number };
  /**
   * Delays every chunk in each direction by `ms` ± `jitterMs` (uniform), so a request/reply round trip grows by
   * about `2 × ms`. Byte order is kept. `setLatency(0)` removes it (data already delayed still arrives in order).
   * @throws InvalidArgumentError when `ms` or `jitterMs` is negative or not finite
   */
  setLatency(ms: number, jitterMs?: number): void;
  /** Resets (RST) every current client and upstream connection at once; clients see ECONNRESET and reconnect. */
  dropConnections(): number;
  /**
   * Partition: connections stay open but nothing is forwarded in either direction and nothing is buffered — bytes
   * arriving while blackholed, and bytes in flight under latency, are discarded. Clients see silence (commands
   * time out), not errors. New connections are accepted and equally silent.
   */
  blackhole(): void;
  /**
   * Ends a blackhole. A byte stream cannot skip the bytes that were discarded (the Redis protocol would
   * desynchronise, as TCP never loses bytes silently), so every connection that lost data is reset, like a TCP
   * connection dying after a long partition; connections idle during the partition survive.
   * @returns the number of connections reset
   */
  heal(): number;
  /** Stops listening: new connections get ECONNREFUSED; open connections are untouched. */
  refuse(): void;
  /**
   * Listens again on the same port after `refuse()`. Calls made while one is starting share it; a `refuse()` or
   * `close()` made before it has bound wins (the port ends up refusing).
   */
  accept(): Promise<void>;
  /** Counters and the current fault state. */
  stats(): ProxyStats;
  /** Resets every connection and stops listening. Idempotent. */
  close(): Promise<void>;
}

function proxyUrl(target: ProxyTarget | string, host: string, port: number): string {
  const source = typeof target === "string" ? target : target.url;
  if (source === undefined) return `redis://${host}:${port}`;
  // Keep scheme, userinfo, path and query; swap only the host:port part.
  const m = /^([a-z+]+:\/\/)((?:[^@/?#]*@)?)([^/?#]*)(.*)$/.exec(source);
  if (m === null) throw new InvalidArgumentError("target", `cannot rewrite URL "${source}"`);
  return `${m[1]}${m[2]}${host.includes(":") ? `[${host}]` : host}:${port}${m[4]}`;
}

function resolveTarget(target: ProxyTarget | string): { host: string; port: number } {
  if (typeof target === "string") {
    const parsed = parseRedisUrl(target);
    if (parsed.kind !== "standalone") {
      throw new InvalidArgumentError("target", `a proxy fronts one node; ${parsed.kind} URLs are not supported`);
    }
    return parsed.hosts[0] as { host: string; port: number };
  }
  if (target === null || typeof target !== "object" || typeof target.host !== "string") {
    throw new InvalidArgumentError("target", "expected { host, port }, a RedisServer or a redis:// URL");
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw new InvalidArgumentError("target.port", `expected an integer 1-65535, got ${String(target.port)}`);
  }
  if (target.url !== undefined) resolveTarget(target.url);
  return { host: target.host, port: target.port };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen({ port, host }, () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : port);
    });
  });
}

/**
 * Starts a TCP proxy (Node `net`) in front of one Redis node, for fault injection in tests: added latency with
 * jitter, dropped connections, blackholes (partitions) and refused connections. Connect clients to `proxy.url`.
 *
 * @example
 * const server = await startRedis();
 * const proxy = await startProxy({ target: server });
 * const redis = connect(proxy.url, { commandTimeoutMs: 500 });
 * proxy.setLatency(50);          // each round trip ~100 ms slower
 * proxy.blackhole();             // commands now time out
 * proxy.heal();                  // service again (connections that lost bytes are reset, clients reconnect)
 * await proxy.close();
 * @throws InvalidArgumentError when the target or port is invalid; the listen error when the port is taken
 */
export async function startProxy(options: StartProxyOptions): Promise<FaultProxy> {
  if (options === null || typeof options !== "object") {
    throw new InvalidArgumentError("options", "expected { target, listenPort? }");
  }
  const target = resolveTarget(options.target);
  const host = options.host ?? "127.0.0.1";
  const listenPort = options.listenPort ?? 0;
  if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535) {
    throw new InvalidArgumentError("listenPort", `expected an integer 0-65535, got ${String(listenPort)}`);
  }
  const random = options.seed === undefined ? Math.random : mulberry32(options.seed);

  const links = new ProxyLinks(target, random);
  let closed = false;

  const onConnection = (client: Socket) => {
    client.on("error", () => {});
    if (closed) {
      reset(client);
      return;
    }
    links.open(client);
  };

  let server = createServer(onConnection);
  const port = await listen(server, listenPort, host);
  let listening = true;
  /** Whether the proxy should listen: the last of accept() / refuse() wins, even over an accept() still starting. */
  let wanted = true;
  /** An accept() whose listen has not completed yet: concurrent calls share it. */
  let accepting: Promise<void> | undefined;
  const url = proxyUrl(options.target, host, port);

  const proxy: FaultProxy = {
    url,
    host,
    port,
    target,
    setLatency(ms: number, jitter = 0) {
      if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
        throw new InvalidArgumentError("ms", `expected a finite number ≥ 0, got ${String(ms)}`);
      }
      if (typeof jitter !== "number" || !Number.isFinite(jitter) || jitter < 0) {
        throw new InvalidArgumentError("jitterMs", `expected a finite number ≥ 0, got ${String(jitter)}`);
      }
      links.setLatency(ms, jitter);
    },
    dropConnections() {
      return links.dropAll();
    },
    blackhole() {
      links.blackhole();
    },
    heal() {
      return links.heal();
    },
    refuse() {
      wanted = false;
      if (!listening) return;
      listening = false;
      // close() stops accepting at once; its callback would wait for open connections, which we keep.
      server.close();
    },
    accept() {
      if (closed) return Promise.resolve();
      wanted = true;
      if (listening) return Promise.resolve();
      accepting ??= (async () => {
        try {
          const next = createServer(onConnection);
          await listen(next, port, host);
          // refuse() or close() while it started: the new listener goes at once (it would outlive close()).
          if (!wanted || closed) {
            next.close();
            return;
          }
          server = next;
          listening = true;
        } finally {
          accepting = undefined;
        }
      })();
      return accepting;
    },
    stats() {
      return { ...links.stats(), refusing: !listening };
    },
    async close() {
      if (closed) return;
      closed = true;
      links.dropAll();
      const pending = accepting;
      if (listening) {
        listening = false;
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      // An accept() still starting closes its listener once it is bound; close() resolves after that.
      await pending?.catch(() => {});
    },
  };
  return proxy;
}
