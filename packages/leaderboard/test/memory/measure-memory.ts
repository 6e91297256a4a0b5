// Measures Redis memory per member: 100,000 members with metadata loaded with submitMany (chunks of 1,000) into a
// leaderboard with a daily and an all-time board, on a fresh redis-server of its own. Prints MEMORY USAGE per key.
// Run: node --conditions=@coordis/source --import tsx packages/leaderboard/test/memory/measure-memory.ts
import { connect } from "@coordis/core";
import { Leaderboard } from "@coordis/leaderboard";
import { startRedis } from "@coordis/testing";

const MEMBERS = Number(process.env.MEMBERS ?? 100_000);
const CHUNK = 1_000;
const server = await startRedis();
const redis = connect(server.url, { commandTimeoutMs: 30_000 });
try {
  const lb = new Leaderboard<{ name: string; country: string }>(redis, "mem", { periods: ["daily", "all"] });
  const before = Number(/used_memory:(\d+)/.exec((await redis.info("memory")) as string)?.[1]);
  for (let i = 0; i < MEMBERS; i += CHUNK) {
    await lb.submitMany(
      Array.from({ length: Math.min(CHUNK, MEMBERS - i) }, (_, j) => {
        const n = i + j;
        // Many equal scores, so the tie encoding is exercised as it would be in a real game.
        return { member: `player-${n}`, score: (n * 7919) % 50_000, meta: { name: `Player ${n}`, country: "DE" } };
      }),
    );
  }
  const after = Number(/used_memory:(\d+)/.exec((await redis.info("memory")) as string)?.[1]);
  const keys = (await redis.keys("coordis:lb:{mem}*")).sort();
  const rows: Array<[string, number]> = [];
  for (const key of keys) rows.push([key, Number(await redis.call("MEMORY", "USAGE", key, "SAMPLES", "0"))]);
  const total = rows.reduce((s, [, b]) => s + b, 0);
  console.log(
    `members: ${MEMBERS} (metadata JSON e.g. ${JSON.stringify({ name: `Player ${MEMBERS - 1}`, country: "DE" })})`,
  );
  for (const [key, bytes] of rows)
    console.log(`${key.padEnd(40)} ${String(bytes).padStart(11)} B  ${(bytes / MEMBERS).toFixed(1)} B/member`);
  console.log(
    `${"total (MEMORY USAGE)".padEnd(40)} ${String(total).padStart(11)} B  ${(total / MEMBERS).toFixed(1)} B/member`,
  );
  console.log(
    `${"used_memory delta".padEnd(40)} ${String(after - before).padStart(11)} B  ${((after - before) / MEMBERS).toFixed(1)} B/member`,
  );
} finally {
  redis.disconnect();
  await server.stop();
}
