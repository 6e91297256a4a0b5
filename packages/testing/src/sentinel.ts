import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type RedisServer, serverTempDir, startRedis } from "./redis-server.js";

/** A master watched by one Sentinel. */
export interface RedisSentinelSetup {
  readonly master: RedisServer;
  readonly sentinel: RedisServer;
  /** Master name Sentinel monitors (`mymaster` unless given). */
  readonly masterName: string;
  /** `redis+sentinel://127.0.0.1:<sentinelPort>/<masterName>`. */
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts a master and a Sentinel (quorum 1) monitoring it, for testing `redis+sentinel://` connections. */
export async function startRedisSentinel(options: { masterName?: string } = {}): Promise<RedisSentinelSetup> {
  const masterName = options.masterName ?? "mymaster";
  const master = await startRedis();
  const dir = serverTempDir();
  try {
    // Sentinel rewrites its config file, so it must be a writable file of its own.
    writeFileSync(
      join(dir, "sentinel.conf"),
      `sentinel monitor ${masterName} ${master.host} ${master.port} 1\nsentinel down-after-milliseconds ${masterName} 2000\n`,
    );
    const sentinel = await startRedis({
      dir,
      configFile: join(dir, "sentinel.conf"),
      extraArgs: ["--sentinel"],
      readyLine: "+monitor master",
    });
    return {
      master,
      sentinel,
      masterName,
      url: `redis+sentinel://${sentinel.host}:${sentinel.port}/${masterName}`,
      async stop() {
        await Promise.all([sentinel.stop(), master.stop()]);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await master.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
