/**
 * Cache + sessions: two replicas share a two-tier cache (one loader call for the whole fleet, invalidation reaching
 * every replica's in-process copy), and a Fastify app keeps its @fastify/session sessions in Redis.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx --conditions=@coordis/source examples/cache-sessions.ts
 */
import { Cache, RedisSessionStore } from "@coordis/cache";
import { connect } from "@coordis/core";
import fastifyCookie from "@fastify/cookie";
import fastifySession from "@fastify/session";
import Fastify from "fastify";

declare module "fastify" {
  interface Session {
    user?: string;
  }
}

const prefix = process.env.COORDIS_PREFIX ?? "coordis";
// One Redis for both here. In production the cache may go to a Redis with an LRU eviction policy, the sessions to one
// that does not evict (noeviction): an evicted logout tombstone would let a slow request save the session back.
const redis = connect(process.env.REDIS_URL);

// --- Cache: two replicas, one database.
let dbReads = 0;
const db = { product: async (id: string) => ({ id, name: `Product ${id}`, price: 10 + dbReads++ }) };
const namespace = `products-${Date.now()}`;
const replicaA = new Cache(redis, { namespace, prefix, ttlMs: 60_000 });
const replicaB = new Cache(redis, { namespace, prefix, ttlMs: 60_000 });
await Promise.all([replicaA.ready(), replicaB.ready()]);

const [a, b] = await Promise.all([
  replicaA.getOrSet("product:7", () => db.product("7")),
  replicaB.getOrSet("product:7", () => db.product("7")),
]);
console.log(`cold read on both replicas: ${a.price} / ${b.price}, database reads: ${dbReads}`);

await replicaA.set("product:7", { ...a, price: 99 }); // a price change on replica A…
let seenByB = await replicaB.get<{ price: number }>("product:7");
for (let i = 0; i < 50 && seenByB?.price !== 99; i++) {
  await new Promise((r) => setTimeout(r, 20)); // …reaches replica B's in-process copy within milliseconds
  seenByB = await replicaB.get<{ price: number }>("product:7");
}
console.log(`replica B after the change: ${seenByB?.price}`);

// --- Sessions in Redis.
const app = Fastify();
await app.register(fastifyCookie);
await app.register(fastifySession, {
  secret: "change-me-to-a-secret-of-32-characters-or-more",
  cookie: { secure: false, maxAge: 3_600_000 }, // secure: true behind HTTPS
  saveUninitialized: false,
  store: new RedisSessionStore(redis, { prefix }),
});
app.post("/login", async (req) => {
  await req.session.regenerate(); // a new session id at login
  req.session.user = "ada";
  return { ok: true };
});
app.get("/me", async (req) => ({ user: req.session.user ?? null }));
app.post("/logout", async (req) => {
  await req.session.destroy(); // a slow request that saves this session afterwards is refused
  return { ok: true };
});

const login = await app.inject({ method: "POST", url: "/login" });
const cookie = String(login.headers["set-cookie"]).split(";")[0] ?? "";
console.log("after login:", (await app.inject({ method: "GET", url: "/me", headers: { cookie } })).json());
await app.inject({ method: "POST", url: "/logout", headers: { cookie } });
const after = (await app.inject({ method: "GET", url: "/me", headers: { cookie } })).json() as { user: string | null };
console.log("after logout:", after);

await app.close();
await Promise.all([replicaA.close(), replicaB.close()]);
redis.disconnect();
if (dbReads !== 1 || seenByB?.price !== 99 || after.user !== null) throw new Error("unexpected cache or session state");
