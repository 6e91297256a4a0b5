import { createServer, type Socket, connect as tcpConnect } from "node:net";

/**
 * A TCP proxy whose `forget()` makes it drop the connections open at that moment without a word (no FIN, no RST):
 * what a NAT or load balancer does to a flow it has expired. Bytes either way then vanish; new connections work.
 */
export async function startForgetfulProxy(target: { host: string; port: number; url?: string }) {
  const pairs = new Set<{ client: Socket; upstream: Socket; forgotten: boolean }>();
  const server = createServer((client) => {
    const upstream = tcpConnect(target.port, target.host);
    const pair = { client, upstream, forgotten: false };
    pairs.add(pair);
    client.on("data", (d: Buffer) => {
      if (!pair.forgotten) upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (!pair.forgotten) client.write(d);
    });
    const end = () => {
      if (pair.forgotten) return; // a forgotten flow's end is not seen by the other side either
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on("close", end);
      socket.on("error", () => {});
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: (target.url ?? `redis://${target.host}:${target.port}`).replace(`:${target.port}`, `:${port}`),
    forget(): number {
      for (const pair of pairs) pair.forgotten = true;
      return pairs.size;
    },
    async close(): Promise<void> {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
