import { createServer } from "node:net";

function tryListen(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(undefined));
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A TCP port that is free on `host` right now (another process may still take it before it is used; callers
 * retry on "Address already in use"). With `busOffset`, `port + busOffset` is free too (Redis Cluster's bus port).
 */
export async function freePort(host = "127.0.0.1", busOffset?: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryListen(0, host);
    if (port === undefined) continue;
    if (busOffset === undefined) return port;
    if (port + busOffset > 65535) continue;
    if ((await tryListen(port + busOffset, host)) !== undefined) return port;
  }
  throw new Error(`no free port found on ${host}`);
}
