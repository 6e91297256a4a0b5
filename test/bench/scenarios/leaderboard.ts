import { coordisExports, type LeaderboardModule } from "../coordis.js";
import { type Scenario, type ScenarioInstance, type SetupContext, Unavailable } from "../types.js";
import { populate } from "./populate.js";
import { KEY_SPACE } from "./raw.js";

const GROUP = "leaderboard";
const RAW_ZADD = "leaderboard/raw-zadd";
const RAW_ZREVRANK = "leaderboard/raw-zrevrank";
const RAW_TOP = "leaderboard/raw-top10";
const RAW_AROUND = "leaderboard/raw-around";
const RADIUS = 5;

const member = (n: number) => `player-${n % KEY_SPACE}`;

/** A raw sorted set of `ctx.populate` members, shared by the raw read scenarios. */
async function rawBoard(ctx: SetupContext) {
  const redis = ctx.client();
  const key = `${ctx.sharedPrefix}:board`;
  await ctx.shared("raw-board", () => populate(ctx.populate, (j) => redis.zadd(key, j, member(j))));
  return { redis, key, pick: (n: number) => member(n % ctx.populate) };
}

/** A Coordis board of `ctx.populate` members, shared by the Coordis read scenarios. */
async function coordisBoard(ctx: SetupContext) {
  const { Leaderboard } = await coordisExports<LeaderboardModule>("leaderboard", ["Leaderboard"]);
  const board = new Leaderboard(ctx.client(), "ranked", { prefix: ctx.sharedPrefix });
  await ctx.shared("coordis-board", () => populate(ctx.populate, (j) => board.submit(member(j), j)));
  return { board, pick: (n: number) => member(n % ctx.populate) };
}

function coordisRead(
  id: string,
  name: string,
  baseline: string,
  op: (board: Awaited<ReturnType<typeof coordisBoard>>) => ScenarioInstance["op"],
): Scenario {
  return {
    id,
    group: GROUP,
    name,
    kind: "coordis",
    topology: "single",
    baseline,
    roundTrips: 1,
    async setup(ctx) {
      return { op: op(await coordisBoard(ctx)) };
    },
  };
}

/** Leaderboard: raw ZADD / ZREVRANK / ZREVRANGE against Coordis submit / rank / top-10 / around. */
export function leaderboardScenarios(): Scenario[] {
  return [
    {
      id: RAW_ZADD,
      group: GROUP,
      name: "raw ZADD",
      kind: "raw",
      topology: "single",
      memoryEntity: "member",
      async setup(ctx) {
        const redis = ctx.client();
        const key = `${ctx.prefix}:submit`;
        return {
          op: (n) => redis.zadd(key, n, member(n)),
          entity: (j) => redis.zadd(`${ctx.prefix}:mem`, j, `member-${j}`),
        };
      },
    },
    {
      id: "leaderboard/coordis-submit",
      group: GROUP,
      name: "Coordis submit",
      kind: "coordis",
      topology: "single",
      baseline: RAW_ZADD,
      roundTrips: 1,
      memoryEntity: "member",
      async setup(ctx) {
        const { Leaderboard } = await coordisExports<LeaderboardModule>("leaderboard", ["Leaderboard"]);
        const redis = ctx.client();
        const board = new Leaderboard(redis, "submit", { prefix: ctx.prefix });
        const memBoard = new Leaderboard(redis, "mem", { prefix: ctx.prefix });
        // Increasing scores: under the default "best" policy every submit is an update, like a raw ZADD.
        return { op: (n) => board.submit(member(n), n), entity: (j) => memBoard.submit(`member-${j}`, j) };
      },
    },
    {
      // Micro-batched submit: one board shared by every caller in flight (batching is per instance).
      id: "leaderboard/coordis-submit-batched",
      group: GROUP,
      name: "Coordis submit, batched",
      kind: "coordis",
      topology: "single",
      baseline: RAW_ZADD,
      reference: "leaderboard/coordis-submit",
      roundTrips: 1,
      roundTripsBound: "at-most",
      roundTripConcurrency: "closed-loop",
      roundTripsNote: "calls in the same event-loop turn share one script call",
      async setup(ctx) {
        const { Leaderboard } = await coordisExports<LeaderboardModule>("leaderboard", ["Leaderboard"]);
        const board = new Leaderboard(ctx.client(), "submit", { prefix: ctx.prefix, batch: true });
        if ((board as { batch?: unknown }).batch === undefined) throw new Unavailable("Leaderboard has no batch mode");
        return { op: (n) => board.submit(member(n), n) };
      },
    },
    {
      id: RAW_ZREVRANK,
      group: GROUP,
      name: "raw ZREVRANK",
      kind: "raw",
      topology: "single",
      async setup(ctx) {
        const { redis, key, pick } = await rawBoard(ctx);
        return { op: (n) => redis.zrevrank(key, pick(n)) };
      },
    },
    coordisRead(
      "leaderboard/coordis-rank",
      "Coordis rank",
      RAW_ZREVRANK,
      ({ board, pick }) =>
        (n) =>
          board.rank(pick(n)),
    ),
    {
      id: RAW_TOP,
      group: GROUP,
      name: "raw ZREVRANGE 0 9 WITHSCORES",
      kind: "raw",
      topology: "single",
      async setup(ctx) {
        const { redis, key } = await rawBoard(ctx);
        return { op: () => redis.zrevrange(key, 0, 9, "WITHSCORES") };
      },
    },
    coordisRead(
      "leaderboard/coordis-top10",
      "Coordis top(10)",
      RAW_TOP,
      ({ board }) =>
        () =>
          board.top(10),
    ),
    {
      id: RAW_AROUND,
      group: GROUP,
      name: `raw around (ZREVRANK + ZREVRANGE ±${RADIUS})`,
      kind: "raw",
      topology: "single",
      async setup(ctx) {
        const { redis, key, pick } = await rawBoard(ctx);
        return {
          async op(n) {
            const rank = await redis.zrevrank(key, pick(n));
            if (rank === null) throw new Error("member missing");
            return redis.zrevrange(key, Math.max(0, rank - RADIUS), rank + RADIUS, "WITHSCORES");
          },
        };
      },
    },
    coordisRead(
      "leaderboard/coordis-around",
      `Coordis around(member, ${RADIUS})`,
      RAW_AROUND,
      ({ board, pick }) =>
        (n) =>
          board.around(pick(n), RADIUS),
    ),
  ];
}
