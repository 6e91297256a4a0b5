import { existsSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { type ConnectOptions, connect, type RedisClient } from "@coordis/core";
import { INSTALL_HINT, RedisNotAvailableError } from "./binaries.js";
import { leastPrivilegeUser, userInfo } from "./least-privilege.js";
import type { RedisServer, StartRedisOptions } from "./server-types.js";

/** The Redis image the container backend runs. */
export const REDIS_IMAGE = "redis:7.0";

/** Where a container runtime's API socket may be, in order of preference. */
function runtimeEndpoints(): Array<{ path: string } | { host: string; port: number }> {
  const out: Array<{ path: string } | { host: string; port: number }> = [];
  const dockerHost = process.env.DOCKER_HOST;
  if (dockerHost?.startsWith("unix://")) out.push({ path: dockerHost.slice("unix://".length) });
  else if (dockerHost?.startsWith("tcp://")) {
    const u = new URL(dockerHost.replace(/^tcp:/, "http:"));
    out.push({ host: u.hostname, port: Number(u.port || 2375) });
  }
  for (const path of [
    "/var/run/docker.sock",
    `${process.env.XDG_RUNTIME_DIR ?? "/run/user/0"}/podman/podman.sock`,
    `${process.env.HOME ?? ""}/.docker/run/docker.sock`,
  ]) {
    if (existsSync(path)) out.push({ path });
  }
  return out;
}

/** True when a container runtime answers a connection within `timeoutMs` (default 1 s); never with `COORDIS_NO_CONTAINERS=1`. */
export async function containerRuntimeReachable(timeoutMs = 1_000): Promise<boolean> {
  if (process.env.COORDIS_NO_CONTAINERS === "1") return false;
  for (const endpoint of runtimeEndpoints()) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = netConnect(endpoint as never);
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(false);
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (ok) return true;
  }
  return false;
}

/**
 * Container backend of {@link startRedis} for machines without `redis-server`: runs {@link REDIS_IMAGE} with
 * testcontainers. Supports `client`, `kill`, `restart`, `pause`/`resume` (docker pause) and `stop`; TLS, ACL files
 * and clusters need a local `redis-server`.
 */
export async function startContainerRedis(options: StartRedisOptions): Promise<RedisServer> {
  if (!(await containerRuntimeReachable())) {
    throw new RedisNotAvailableError(
      process.env.COORDIS_NO_CONTAINERS === "1"
        ? `${INSTALL_HINT.replace(/ and no container runtime \(Docker\/Podman\) is reachable/, "")} ` +
            "(COORDIS_NO_CONTAINERS=1 turns the container fallback off.)"
        : INSTALL_HINT,
    );
  }
  if (options.tls !== undefined && options.tls !== false) {
    throw new RedisNotAvailableError("TLS servers need a local redis-server; the container backend does not do TLS.");
  }
  let tc: typeof import("testcontainers");
  try {
    tc = await import("testcontainers");
  } catch {
    throw new RedisNotAvailableError(
      "redis-server is not installed; a container runtime is reachable but the optional peer `testcontainers` " +
        "(12.0.1) is not installed. Run `npm install -D testcontainers@12.0.1` or install redis-server.",
    );
  }
  const command = ["redis-server", "--save", "", "--appendonly", options.appendOnly ? "yes" : "no"];
  if (options.password !== undefined) command.push("--requirepass", options.password);
  for (const [name, value] of Object.entries(options.config ?? {})) {
    command.push(`--${name}`, ...(Array.isArray(value) ? value.map(String) : [String(value)]));
  }
  const { user, args: userArgs } = leastPrivilegeUser(options.leastPrivilege);
  command.push(...userArgs);
  let container = await new tc.GenericContainer(REDIS_IMAGE)
    .withCommand(command)
    .withExposedPorts(6379)
    .withWaitStrategy(tc.Wait.forLogMessage("Ready to accept connections"))
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(6379);
  const auth = options.password === undefined ? "" : `:${encodeURIComponent(options.password)}@`;
  const adminUrl = `redis://${auth}${host}:${port}`;
  const url = user === undefined ? adminUrl : `redis://${userInfo(user)}${host}:${port}`;
  const clients = new Set<RedisClient>();
  let running = true;
  let paused = false;
  const docker = async (action: "pause" | "unpause") => {
    const client = (await tc.getContainerRuntimeClient()).container;
    const handle = client.getById(container.getId());
    await (action === "pause" ? handle.pause() : handle.unpause());
  };
  return {
    host,
    port,
    url,
    adminUrl,
    user,
    dir: "",
    tls: undefined,
    get pid() {
      return undefined;
    },
    get running() {
      return running;
    },
    get paused() {
      return paused;
    },
    client(connectOptions?: ConnectOptions) {
      const c = connect(url, connectOptions);
      clients.add(c);
      return c;
    },
    adminClient(connectOptions?: ConnectOptions) {
      const c = connect(adminUrl, connectOptions);
      clients.add(c);
      return c;
    },
    async kill() {
      await container.stop({ timeout: 0, remove: false });
      running = false;
    },
    pause() {
      paused = true;
      void docker("pause");
    },
    resume() {
      paused = false;
      void docker("unpause");
    },
    async restart() {
      await container.restart({ timeout: 0 });
      running = true;
    },
    async stop() {
      for (const c of clients) c.disconnect();
      clients.clear();
      await container.stop({ timeout: 0 });
      running = false;
      container = undefined as never;
    },
  };
}
