import { connect, type RedisClient } from "@coordis/core";
import { leaderboardScripts, periodBucket } from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { previousSubmitBatch, previousSubmitOne } from "./fixtures/previous-submit.js";

const prefix = testPrefix("lbdiff");
const DAY = 86_400_000;
const GRACE = 2 * DAY;

type Period = "all" | "daily";
interface Item {
  member: string;
  score: number;
  meta: string;
  at: number | undefined;
}
interface Config {
  update: "best" | "replace" | "increment";
  order: "desc" | "asc";
  periods: Period[];
}

/** A small seeded generator (mulberry32): the same calls on every run. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** KEYS and ARGV of a submit call in the full layout (what the client sends when no shorter form applies). */
function fullCall(base: string, config: Config, items: Item[], now: number) {
  const boards = new Map<string, (string | number)[]>();
  const keys = [`${base}:meta`, `${base}:seq`];
  for (const item of items) {
    config.periods.forEach((period, p) => {
      const bucket = periodBucket(period, item.at ?? now);
      const zset = `${base}:${period}:${bucket.id}`;
      if (boards.has(zset)) return;
      boards.set(zset, period === "all" ? [-(p + 1)] : [p + 1, bucket.startMs, bucket.endMs, bucket.endMs + GRACE]);
      keys.push(zset, `${zset}:idx`);
    });
  }
  const args: (string | number)[] = [config.update, config.order, 60_000];
  for (const b of boards.values()) args.push(...b);
  for (const item of items) args.push(item.member, String(item.score), item.meta, item.at ?? "");
  return { keys, args };
}

/** The short form the client sends for the all-time board alone, no metadata, no time; else the full layout. */
function shortCall(base: string, config: Config, items: Item[], now: number, batch: boolean) {
  const full = fullCall(base, config, items, now);
  const plain = items.every((i) => i.meta === "" && i.at === undefined);
  if (config.periods.length !== 1 || config.periods[0] !== "all" || !plain || (!batch && items.length > 1)) return full;
  const args: (string | number)[] = batch ? [config.update, config.order, ""] : [config.update, config.order];
  for (const item of items) args.push(item.member, String(item.score));
  return { keys: full.keys, args };
}

/** The keys `names` (relative to `base`) with content and expiry, comparable across bases. */
async function snapshot(redis: RedisClient, base: string, names: Iterable<string>) {
  const out: Record<string, unknown> = {};
  for (const rel of [...names].sort()) {
    const name = base + rel;
    // The key's type by its name (fullCall's names): seq a string, meta and every index a hash, a board a zset.
    let value: unknown;
    if (rel === ":seq") value = await redis.get(name);
    // Raw HGETALL: fields in stored order (a small hash keeps the order its fields were first written in).
    else if (rel === ":meta" || rel.endsWith(":idx")) value = await redis.call("HGETALL", name);
    else value = await redis.zrange(name, "0", "-1", "WITHSCORES");
    out[rel] = { value, expiry: await redis.call("PEXPIRETIME", name) };
  }
  return out;
}

async function run(redis: RedisClient, source: string, call: { keys: string[]; args: (string | number)[] }) {
  try {
    return { reply: await redis.eval(source, call.keys.length, ...call.keys, ...call.args) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const configs: Config[] = [];
for (const update of ["best", "replace", "increment"] as const) {
  for (const order of ["desc", "asc"] as const) {
    for (const periods of [["all"], ["all", "daily"], ["daily"]] as Period[][])
      configs.push({ update, order, periods });
  }
}

// The submit scripts after their Redis CPU rework against the scripts before it: the same random calls (single,
// all-or-none several items, micro-batches; new and existing members, ties, metadata, explicit times on two daily
// boards, increments leaving the safe range) on twin keys give the same replies and the same stored bytes, whether
// the new scripts get the full argument layout or the short form of the all-time board.
describe("submit scripts before and after the CPU rework, on twin keys", () => {
  let redis: RedisClient;
  let admin: RedisClient; // reads every key's expiry (PEXPIRETIME), which the scripts' user may not run
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisAdminRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  it.each(configs.map((c, i) => [i, c] as const))("config %i: %o", async (i, config) => {
    const random = rng(1000 + i);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
    const sides = ["old", "new", "short"].map((s) => `${prefix}:${i}:${s}`);
    const [oldBase, newBase, shortBase] = sides as [string, string, string];
    const names = new Set<string>();
    const scores = [1, 2, 2, 3, 0.5, -1, 7, 2 ** 52, -(2 ** 52), 9_007_199_254_740_991];
    for (let step = 0; step < 40; step++) {
      const now = Date.now();
      const kind = pick(["single", "single", "batch", "batch", "many"] as const);
      const count = kind === "single" ? 1 : 2 + Math.floor(random() * 4);
      const items: Item[] = [];
      const plainCall = random() < 0.5; // every item without metadata or time: the short form on the all-time board
      for (let k = 0; k < count; k++) {
        const plain = plainCall || random() < 0.6;
        items.push({
          member: `m${Math.floor(random() * 6)}`,
          score: pick(scores),
          meta: plain || random() < 0.5 ? "" : JSON.stringify({ step, k }),
          at: plain || random() < 0.5 ? undefined : pick([now - 1000, now - DAY]),
        });
      }
      const batch = kind === "batch";
      const oldSource = batch ? previousSubmitBatch : previousSubmitOne;
      const newSource = (batch ? leaderboardScripts.submitBatch : leaderboardScripts.submit).source;
      const call = fullCall(oldBase, config, items, now);
      for (const key of call.keys) names.add(key.slice(oldBase.length));
      const before = await run(redis, oldSource, call);
      const after = await run(redis, newSource, fullCall(newBase, config, items, now));
      const short = await run(redis, newSource, shortCall(shortBase, config, items, now, batch));
      const what = { step, kind, items };
      expect(after, JSON.stringify(what)).toEqual(before);
      expect(short, JSON.stringify(what)).toEqual(before);
      const stored = await snapshot(admin, oldBase, names);
      expect(await snapshot(admin, newBase, names), JSON.stringify(what)).toEqual(stored);
      expect(await snapshot(admin, shortBase, names), JSON.stringify(what)).toEqual(stored);
    }
    // The calls did reach the boards (a run where every call failed would compare nothing).
    expect(Number(await redis.get(`${newBase}:seq`))).toBeGreaterThan(10);
  });

  // A batch on the all-time board reads every member's entry up front; when that read meets a key of another type,
  // each item meets the error on its own, as before.
  it.each([":all:all", ":all:all:idx"])("a batch whose %s key holds a string: the same error per item", async (rel) => {
    const config: Config = { update: "best", order: "desc", periods: ["all"] };
    const items: Item[] = ["a", "b", "a"].map((member, k) => ({ member, score: k, meta: "", at: undefined }));
    const replies = [];
    for (const [side, source] of [
      ["old", previousSubmitBatch],
      ["new", leaderboardScripts.submitBatch.source],
    ] as const) {
      const base = `${prefix}:wrong${rel}:${side}`;
      await admin.set(base + rel, "x");
      const call = side === "old" ? fullCall(base, config, items, Date.now()) : shortCall(base, config, items, 0, true);
      replies.push(await run(redis, source, call));
    }
    expect((replies[0] as { reply: unknown[] }).reply[1]).toContain("WRONGTYPE");
    expect(replies[1]).toEqual(replies[0]);
  });
});
