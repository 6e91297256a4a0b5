import { Leaderboard, MAX_BATCH, MAX_META_BYTES, MAX_RADIUS, PERIODS, periodBucket } from "@coordis/leaderboard";
import fc from "fast-check";
import { describe, it } from "vitest";
import {
  bad,
  type Case,
  c,
  cyclic,
  DAY_MS,
  invalid,
  isJsonable,
  isObserver,
  isOneOf,
  isPlainObject,
  prefix,
  redis,
  rejectedWithoutCommands,
  useServer,
} from "./harness.js";

useServer();

describe("bad input is rejected with InvalidArgumentError and sends nothing", () => {
  it("leaderboard: constructor, submit, submitMany, rank, percentile, top, page, around, count, remove", async () => {
    const o = { prefix };
    const board = new Leaderboard(redis, "bad-input", { ...o, periods: ["all", "daily"] });
    const inc = new Leaderboard(redis, "bad-input-inc", { ...o, update: "increment" });
    const make = (patch: Record<string, unknown>) => new Leaderboard(redis, "n", { ...o, ...patch });
    const member = bad.str(512);
    const boardOptions = (call: (opts: unknown) => unknown, at: string): Case[] => [
      c(`${at}(options)`, "options", bad.options(), (v) => call(v)),
      c(`${at}({ period })`, "options.period", bad.optional(invalid(isOneOf(["all", "daily"]))), (v) =>
        call({ period: v }),
      ),
      c(`${at}({ at })`, "options.at", bad.optional(bad.int(0, 8.64e15)), (v) => call({ at: v })),
    ];
    const cases: Case[] = [
      c("Leaderboard(redis)", "redis", bad.client(), (v) => new Leaderboard(v, "n", o)),
      c("Leaderboard(name)", "name", bad.name(), (v) => new Leaderboard(redis, v, o)),
      c("Leaderboard(options)", "options", bad.options(), (v) => new Leaderboard(redis, "n", v)),
      // Leaderboard names a bad prefix "prefix" (via entityKeys) where the other primitives say "options.prefix".
      c(
        "Leaderboard({ prefix })",
        /^(options\.)?prefix$/,
        bad.optional(bad.prefix()),
        (v) => new Leaderboard(redis, "n", { prefix: v }),
      ),
      c("Leaderboard({ order })", "options.order", bad.optional(bad.oneOf(["desc", "asc"])), (v) => make({ order: v })),
      c("Leaderboard({ update })", "options.update", bad.optional(bad.oneOf(["best", "replace", "increment"])), (v) =>
        make({ update: v }),
      ),
      c("Leaderboard({ ties })", "options.ties", bad.optional(bad.oneOf(["earliest-first"])), (v) => make({ ties: v })),
      c(
        "Leaderboard({ periods })",
        /^options\.periods(\[\d+\])?$/,
        bad.optional(
          fc.oneof(
            invalid((v) => Array.isArray(v) && v.length > 0),
            fc.array(bad.oneOf(PERIODS), { minLength: 1, maxLength: 3 }),
            fc.constantFrom(["all", "all"], ["daily", "weekly", "daily"]),
          ),
        ),
        (v) => make({ periods: v }),
      ),
      c(
        "Leaderboard({ timeZoneOffsetMinutes })",
        "options.timeZoneOffsetMinutes",
        bad.optional(bad.int(-840, 840)),
        (v) => make({ timeZoneOffsetMinutes: v }),
      ),
      c("Leaderboard({ graceMs })", "options.graceMs", bad.optional(bad.duration(1, 90 * DAY_MS)), (v) =>
        make({ graceMs: v }),
      ),
      c(
        "Leaderboard({ clockToleranceMs })",
        "options.clockToleranceMs",
        bad.optional(bad.duration(0, 3_600_000)),
        (v) => make({ clockToleranceMs: v }),
      ),
      c("Leaderboard({ metaMaxBytes })", "options.metaMaxBytes", bad.optional(bad.int(1, MAX_META_BYTES)), (v) =>
        make({ metaMaxBytes: v }),
      ),
      c("Leaderboard({ observer })", "options.observer", bad.optional(invalid(isObserver)), (v) =>
        make({ observer: v }),
      ),
      c("submit(member)", "member", member, (v) => board.submit(v, 1)),
      c("submit(score)", "score", bad.finite(-Number.MAX_VALUE, Number.MAX_VALUE), (v) => board.submit("m", v)),
      c(
        "submit(score) on an increment board",
        "score",
        bad.finite(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
        (v) => inc.submit("m", v),
      ),
      c("submit(options)", "options", bad.options(), (v) => board.submit("m", 1, v)),
      c(
        "submit({ meta })",
        "meta",
        invalid(
          (v) => v === undefined || isJsonable(v, 1024),
          fc.constantFrom(10n, () => 1, Symbol("m"), cyclic, "x".repeat(1_100), { big: "é".repeat(600) }),
        ),
        (v) => board.submit("m", 1, { meta: v }),
      ),
      c("submit({ at })", "at", bad.optional(bad.int(0, 8.64e15)), (v) => board.submit("m", 1, { at: v })),
      c(
        "submitMany(items)",
        // an item's unknown key is named too: items[0].meaat
        /^items(\[\d+\](\.[^.]*)?)?$/,
        invalid(
          (v) => Array.isArray(v) && v.length > 0 && v.length <= MAX_BATCH && v.every(isPlainObject),
          fc.constant(Array.from({ length: MAX_BATCH + 1 }, (_, i) => ({ member: `m${i}`, score: i }))),
        ),
        (v) => board.submitMany(v),
      ),
      c("submitMany(items[i].member)", "items[1].member", member, (v) =>
        board.submitMany([
          { member: "a", score: 1 },
          { member: v, score: 1 },
        ]),
      ),
      c("submitMany(items[i].score)", "items[0].score", bad.finite(-Number.MAX_VALUE, Number.MAX_VALUE), (v) =>
        board.submitMany([{ member: "a", score: v }]),
      ),
      c("submitMany(items[i].at)", "items[0].at", bad.optional(bad.int(0, 8.64e15)), (v) =>
        board.submitMany([{ member: "a", score: 1, at: v }]),
      ),
      c("rank(member)", "member", member, (v) => board.rank(v)),
      ...boardOptions((opts) => board.rank("m", opts as never), "rank"),
      c("percentile(member)", "member", member, (v) => board.percentile(v)),
      c("top(n)", "n", bad.int(1, MAX_BATCH), (v) => board.top(v)),
      ...boardOptions((opts) => board.top(3, opts as never), "top"),
      c("page(page)", "page", bad.int(1, 2 ** 31 / 10), (v) => board.page(v, 10)),
      c("page(size)", "size", bad.int(1, MAX_BATCH), (v) => board.page(1, v)),
      c("around(member)", "member", member, (v) => board.around(v, 2)),
      c("around(radius)", "radius", bad.int(0, MAX_RADIUS), (v) => board.around("m", v)),
      ...boardOptions((opts) => board.around("m", 1, opts as never), "around"),
      ...boardOptions((opts) => board.count(opts as never), "count"),
      c("remove(member)", "member", member, (v) => board.remove(v)),
      c("periodBucket(period)", "period", bad.oneOf(["all", "daily", "weekly", "monthly"]), (v) =>
        periodBucket(v as never, 0),
      ),
      c("periodBucket(atMs)", "atMs", bad.int(-8.6e15, 8.6e15), (v) => periodBucket("daily", v as never)),
      c("periodBucket(offsetMinutes)", "offsetMinutes", bad.optional(bad.int(-840, 840)), (v) =>
        periodBucket("daily", 0, v as never),
      ),
    ];
    await rejectedWithoutCommands(cases);
  });
});
