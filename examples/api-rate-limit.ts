/**
 * API rate limiting: a Fastify service whose routes share limits across every replica, answered with the IETF
 * RateLimit headers and problem+json 429s, and Prometheus metrics on the app's own registry.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx --conditions=@coordis/source examples/api-rate-limit.ts
 */
import { addressKey, coordis } from "@coordis/fastify";
import Fastify from "fastify";
import { Registry } from "prom-client";

const registry = new Registry(); // the app's registry: Coordis series appear next to the app's own
const app = Fastify();
await app.register(coordis, {
  url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379", // the plugin opens and closes this connection
  prefix: process.env.COORDIS_PREFIX ?? "coordis",
  metrics: { registry }, // GET /metrics
  rateLimit: {
    rules: [
      { name: "burst", limit: 3, windowMs: 1_000 },
      { name: "hourly", limit: 100, windowMs: 3_600_000 },
    ],
    key: (req) => String(req.headers["x-api-key"] ?? addressKey(req.ip)), // an IPv6 client by its /64
  },
});

app.get("/search", { config: { coordis: { rateLimit: true } } }, async () => ({ results: [] }));
app.post(
  "/login",
  { config: { coordis: { rateLimit: { rules: [{ name: "login", limit: 2, windowMs: 60_000 }] } } } },
  async () => ({ ok: true }),
);

await app.listen({ host: "127.0.0.1", port: 0 });
const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
const key = `key-${Date.now()}`; // a fresh API key per run

const statuses: number[] = [];
for (let i = 1; i <= 4; i++) {
  const res = await fetch(`${base}/search`, { headers: { "x-api-key": key } });
  statuses.push(res.status);
  console.log(`GET /search #${i}: ${res.status}  RateLimit: ${res.headers.get("ratelimit")}`);
  if (res.status === 429) {
    console.log(`  Retry-After: ${res.headers.get("retry-after")}  body: ${await res.text()}`);
  }
}
console.log(
  `RateLimit-Policy: ${(await fetch(`${base}/search`, { headers: { "x-api-key": "other" } })).headers.get("ratelimit-policy")}`,
);

const metrics = await (await fetch(`${base}/metrics`)).text();
console.log(
  metrics
    .split("\n")
    .filter((l) => l.startsWith("coordis_ratelimit_decisions_total"))
    .join("\n"),
);

await app.close();
if (statuses.join(",") !== "200,200,200,429") throw new Error(`unexpected statuses ${statuses.join(",")}`);
