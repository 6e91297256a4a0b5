import { buildApp, loadConfig } from "@coordis/demo";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";

/** Demo replicas as app instances of this process, listening on real ports. */
export interface InProcessReplicas {
  readonly apps: FastifyInstance[];
  readonly urls: string[];
  close(): Promise<void>;
}

/**
 * Builds one replica per id in `ids` (its `REPLICA_ID`) with `env` on top of budgets no test reaches and silent logs,
 * without jobs and each with a registry of its own, and has them listen on free ports of 127.0.0.1.
 */
export async function inProcessReplicas(
  ids: readonly string[],
  env: Record<string, string>,
): Promise<InProcessReplicas> {
  const apps = await Promise.all(
    ids.map(async (id) => {
      const config = loadConfig({
        RATE_LIMIT_BURST: "1000000",
        RATE_LIMIT_DAILY: "1000000000",
        LOG_LEVEL: "silent",
        ...env,
        REPLICA_ID: id,
      });
      const app = await buildApp(config, { jobs: false, registry: new Registry() });
      await app.listen({ port: 0, host: "127.0.0.1" });
      return app;
    }),
  );
  const urls = apps.map((app) => `http://127.0.0.1:${(app.server.address() as { port: number }).port}`);
  return { apps, urls, close: async () => void (await Promise.all(apps.map((app) => app.close()))) };
}
