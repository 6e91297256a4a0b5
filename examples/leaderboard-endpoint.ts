/**
 * Leaderboard endpoint: a game API where any replica accepts scores and serves today's and all-time boards, with
 * exact ties (earliest first) and player metadata.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx --conditions=@coordis/source examples/leaderboard-endpoint.ts
 */
import { connect } from "@coordis/core";
import { Leaderboard } from "@coordis/leaderboard";
import Fastify from "fastify";

const redis = connect(process.env.REDIS_URL);
const scores = new Leaderboard<{ name: string }>(redis, `space-race-${Date.now()}`, {
  prefix: process.env.COORDIS_PREFIX ?? "coordis",
  order: "desc", // higher is better
  update: "best", // a player's best run counts
  periods: ["daily", "all"], // queries default to today's board
});

const app = Fastify();
app.post("/runs", async (req) => {
  const { player, name, score } = req.body as { player: string; name: string; score: number };
  const { rank, updated } = await scores.submit(player, score, { meta: { name } });
  return { rank, updated };
});
app.get("/top", async (req) => {
  const { period } = req.query as { period?: "daily" | "all" };
  return scores.top(10, period ? { period } : {});
});
app.get("/players/:id/around", async (req) => scores.around((req.params as { id: string }).id, 1));

const runs = [
  { player: "p1", name: "Ada", score: 1200 },
  { player: "p2", name: "Bo", score: 900 },
  { player: "p3", name: "Cy", score: 1200 }, // ties with Ada, who got there first
  { player: "p2", name: "Bo", score: 1500 },
  { player: "p1", name: "Ada", score: 800 }, // below Ada's best: ignored
];

/** A request to the app; an error answer (Redis unavailable: a 500 naming it) ends the example with its message. */
async function call(method: "GET" | "POST", url: string, payload?: object): Promise<unknown> {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { payload }) });
  if (res.statusCode >= 400) throw new Error(`${method} ${url}: HTTP ${res.statusCode} ${res.body}`);
  return res.json();
}

for (const run of runs) console.log(`${run.name} scores ${run.score}:`, await call("POST", "/runs", run));
const top = (await call("GET", "/top?period=all")) as {
  rank: number;
  score: number;
  meta?: { name: string };
}[];
console.log("all-time top:", top.map((e) => `${e.rank}. ${e.meta?.name} ${e.score}`).join(", "));
console.log("around Ada today:", await call("GET", "/players/p1/around"));

await app.close();
redis.disconnect();
if (top.map((e) => e.meta?.name).join(",") !== "Bo,Ada,Cy") throw new Error("unexpected ranking");
