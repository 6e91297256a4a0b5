import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Raised when the harness cannot run Redis here; the message says how to install it. */
export class RedisNotAvailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisNotAvailableError";
  }
}

/** Finds an executable file on PATH (or returns the override when it is one). */
export function findExecutable(name: string, override?: string): string | undefined {
  const candidates = override ? [override] : (process.env.PATH ?? "").split(delimiter).map((d) => join(d, name));
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      if (statSync(path).isFile()) return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** `override` when it names an executable file; a variable naming anything else fails loudly, never falls back. */
function overridden(variable: string, name: string): string | undefined {
  const override = process.env[variable];
  if (!override) return findExecutable(name);
  const path = findExecutable(name, override);
  if (path === undefined) {
    throw new RedisNotAvailableError(
      `${variable}=${override} is not an executable file: point it at a ${name} binary, or unset it to use the ` +
        `${name} on PATH`,
    );
  }
  return path;
}

/** `redis-server` to run: `$COORDIS_REDIS_SERVER`, else the one on PATH. */
export function redisServerPath(): string | undefined {
  return overridden("COORDIS_REDIS_SERVER", "redis-server");
}

/** `redis-cli` to run: `$COORDIS_REDIS_CLI`, else the one on PATH. */
export function redisCliPath(): string | undefined {
  return overridden("COORDIS_REDIS_CLI", "redis-cli");
}

/** The message shown when neither redis-server nor a container runtime is available. */
export const INSTALL_HINT =
  "redis-server was not found on PATH and no container runtime (Docker/Podman) is reachable. " +
  "Install Redis 7 or newer: `apt-get install redis-server` (Debian/Ubuntu), `brew install redis` (macOS), " +
  "or start Docker so the harness can use testcontainers. To use a specific binary set COORDIS_REDIS_SERVER.";
