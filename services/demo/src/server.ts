/**
 * One replica of the demo: reads its configuration from the environment, listens, and prints one JSON line
 * `{"event":"listening","replica":...,"url":...}` once ready (`url`: where this machine reaches it, see `localUrl`).
 * SIGTERM / SIGINT close it cleanly; with `COORDIS_EXIT_WITH_PARENT=1` it also exits when its stdin closes (its
 * launcher died).
 */
import { buildApp } from "./app.js";
import { loadConfig, localUrl } from "./config.js";

const config = loadConfig();
let app: Awaited<ReturnType<typeof buildApp>>;
try {
  app = await buildApp(config);
} catch (err) {
  // The first thing a replica does is read its shared state from Redis: say which Redis it could not use.
  const url = config.redisUrl.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@"); // no password in logs
  process.stderr.write(
    `demo replica ${config.replicaId} could not start with Redis at ${url} (REDIS_URL): ` +
      `${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
}
const address = await app.listen({ port: config.port, host: config.host });
const port = (app.server.address() as { port: number }).port;
process.stdout.write(
  `${JSON.stringify({ event: "listening", replica: config.replicaId, url: localUrl(config.host, port), address })}\n`,
);

let closing = false;
const shutdown = async (code: number) => {
  if (closing) return;
  closing = true;
  const force = setTimeout(() => process.exit(code || 1), 5_000);
  force.unref();
  try {
    await app.close();
  } finally {
    process.exit(code);
  }
};
process.on("SIGTERM", () => void shutdown(0));
process.on("SIGINT", () => void shutdown(0));
if (process.env.COORDIS_EXIT_WITH_PARENT === "1") {
  process.stdin.on("end", () => void shutdown(0));
  process.stdin.on("error", () => void shutdown(0));
  process.stdin.resume();
}
