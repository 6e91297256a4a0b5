/** Bad input to @coordis/eventlog is rejected with InvalidArgumentError and sends nothing (see ./harness.ts). */
import { InvalidArgumentError } from "@coordis/core";
import { EventLog, MAX_IDEMPOTENCY_KEY_BYTES, MAX_READ_LIMIT } from "@coordis/eventlog";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ACCEPTED,
  bad,
  badStrings,
  bytes,
  type Case,
  c,
  cyclic,
  DAY_MS,
  invalid,
  isFunc,
  isObserver,
  isPlainObject,
  isStreamId,
  MAX_DURATION,
  NUM_RUNS,
  outcomeOf,
  prefix,
  redis,
  rejectedWithoutCommands,
  U64,
  useServer,
} from "./harness.js";

useServer();

describe("bad input is rejected with InvalidArgumentError and sends nothing", () => {
  it("eventlog: constructor, append, read, tail, group, consume, deadLetters", async () => {
    const o = { prefix };
    const log = new EventLog(redis, "bad-input", { ...o, maxEventBytes: 1_024 });
    const group = log.group("g", { consumer: "c" });
    const make = (patch: Record<string, unknown>) => new EventLog(redis, "n", { ...o, ...patch });
    const started: { stop(): Promise<void> }[] = [];
    const consume = (handler: unknown, options: unknown) => {
      const consumer = group.consume(handler as never, options as never);
      started.push(consumer); // only reached when a bad value was accepted: stop it again
      return consumer;
    };
    /** An options object at `at` with one unknown key out of `keys` (each a plausible typo): the key is named. */
    const typo = (what: string, at: string, keys: string[], call: (v: Record<string, unknown>) => unknown) =>
      c(
        what,
        new RegExp(`^${at.replaceAll(".", "\\.")}\\.(${keys.join("|")})$`),
        fc.constantFrom(...keys.map((k) => ({ [k]: 1 }))),
        call as (v: never) => unknown,
      );
    const cases: Case[] = [
      c(
        "EventLog(redis)",
        "redis",
        invalid((v) => isPlainObject(v) && isFunc((v as { duplicate?: unknown }).duplicate)),
        (v) => new EventLog(v, "n", o),
      ),
      c("EventLog(name)", "name", bad.name(), (v) => new EventLog(redis, v, o)),
      c("EventLog(options)", "options", bad.options(), (v) => new EventLog(redis, "n", v)),
      // EventLog names a bad prefix "prefix" (via entityKeys) where lock/ratelimit/pubsub say "options.prefix".
      c(
        "EventLog({ prefix })",
        /^(options\.)?prefix$/,
        bad.optional(bad.prefix()),
        (v) => new EventLog(redis, "n", { prefix: v }),
      ),
      c("EventLog({ maxLen })", "options.maxLen", bad.optional(bad.int(1, Number.MAX_SAFE_INTEGER)), (v) =>
        make({ maxLen: v }),
      ),
      c("EventLog({ maxAgeMs })", "options.maxAgeMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) =>
        make({ maxAgeMs: v }),
      ),
      // chain: a boolean, or a keyed chain { key, keyId, previousKeys? } (an object is checked as one).
      c("EventLog({ chain })", /^options\.chain(\.|$)/, bad.optional(bad.bool()), (v) => make({ chain: v })),
      c(
        "EventLog({ chain: { key } })",
        "options.chain.key",
        invalid(
          (v) => (typeof v === "string" && bytes(v) >= 16) || (v instanceof Uint8Array && v.length >= 16),
          fc.constantFrom("", "fifteen-bytes!!", Buffer.alloc(15), new Uint8Array(3)),
        ),
        (v) => make({ chain: { key: v, keyId: "k1" } }),
      ),
      c(
        "EventLog({ chain: { keyId } })",
        "options.chain.keyId",
        invalid(
          (v) => typeof v === "string" && /^[A-Za-z0-9._-]{1,64}$/.test(v),
          fc.constantFrom("", "a b", "k{1}", "x".repeat(65), "é"),
        ),
        (v) => make({ chain: { key: "k".repeat(32), keyId: v } }),
      ),
      c(
        "EventLog({ chain: { previousKeys } })",
        /^options\.chain\.previousKeys/,
        bad.optional(
          invalid(
            (v) =>
              isPlainObject(v) &&
              Object.entries(v as object).every(
                ([k, key]) =>
                  /^[A-Za-z0-9._-]{1,64}$/.test(k) &&
                  ((typeof key === "string" && bytes(key) >= 16) || (key instanceof Uint8Array && key.length >= 16)),
              ),
            fc.constantFrom({ "a b": "k".repeat(32) }, { old: "short" }, { old: 42 }),
          ),
        ),
        (v) => make({ chain: { key: "k".repeat(32), keyId: "k1", previousKeys: v } }),
      ),
      c("EventLog({ chain: keyed, batch })", "options.batch", fc.constantFrom(true, { maxSize: 4 }), (v) =>
        make({ chain: { key: "k".repeat(32), keyId: "k1" }, batch: v }),
      ),
      c("EventLog({ unverified })", "options.unverified", bad.optional(bad.oneOf(["reject", "mark", "skip"])), (v) =>
        make({ unverified: v }),
      ),
      c(
        "EventLog({ idempotencyConflict })",
        "options.idempotencyConflict",
        bad.optional(bad.oneOf(["error", "report"])),
        (v) => make({ idempotencyConflict: v }),
      ),
      c("EventLog({ maxEventBytes })", "options.maxEventBytes", bad.optional(bad.int(1, 64 * 1024 * 1024)), (v) =>
        make({ maxEventBytes: v }),
      ),
      c(
        "EventLog({ idempotencyWindowMs })",
        "options.idempotencyWindowMs",
        bad.optional(bad.duration(1, MAX_DURATION)),
        (v) => make({ idempotencyWindowMs: v }),
      ),
      c("EventLog({ observer })", /^options\.observer/, bad.optional(invalid(isObserver)), (v) =>
        make({ observer: v }),
      ),
      c(
        "append(event)",
        "event",
        fc.oneof(
          fc.constantFrom<unknown>(undefined, () => 1, Symbol("e"), 10n, cyclic, [1n]),
          fc.string({ minLength: 1_100, maxLength: 1_200 }),
        ),
        (v) => log.append(v),
      ),
      c("append(options)", "options", bad.options(), (v) => log.append({ a: 1 }, v)),
      c("append({ idempotencyKey })", "options.idempotencyKey", bad.optional(bad.str(MAX_IDEMPOTENCY_KEY_BYTES)), (v) =>
        log.append({ a: 1 }, { idempotencyKey: v }),
      ),
      c("read(options)", "options", bad.options(), (v) => log.read(v)),
      c("read({ after })", "options.after", bad.optional(bad.streamId()), (v) => log.read({ after: v })),
      c("read({ before })", "options.before", bad.optional(bad.streamId()), (v) => log.read({ before: v })),
      c("read({ limit })", "options.limit", bad.optional(bad.int(1, MAX_READ_LIMIT)), (v) => log.read({ limit: v })),
      c("read({ reverse })", "options.reverse", bad.optional(bad.bool()), (v) => log.read({ reverse: v })),
      c("read({ unverified })", "options.unverified", bad.optional(bad.oneOf(["reject", "mark", "skip"])), (v) =>
        log.read({ unverified: v }),
      ),
      c("tail(options)", "options", bad.options(), (v) => log.tail(v)),
      c(
        "tail({ from })",
        "options.from",
        bad.optional(invalid((v) => v === "start" || v === "end" || isStreamId(v), fc.constantFrom("START", "$", "-"))),
        (v) => log.tail({ from: v }),
      ),
      c("tail({ signal })", "options.signal", bad.optional(invalid((v) => v instanceof AbortSignal)), (v) =>
        log.tail({ signal: v }),
      ),
      c("tail({ blockMs })", "options.blockMs", bad.optional(bad.duration(10, 60_000)), (v) =>
        log.tail({ blockMs: v }),
      ),
      c("tail({ batch })", "options.batch", bad.optional(bad.int(1, 1_000)), (v) => log.tail({ batch: v })),
      c("tail({ unverified })", "options.unverified", bad.optional(bad.oneOf(["reject", "mark", "skip"])), (v) =>
        log.tail({ unverified: v }),
      ),
      c("group(groupName)", "groupName", bad.str(256), (v) => log.group(v, { consumer: "c" })),
      c("group(options)", /^options(\.consumer)?$/, invalid(isPlainObject), (v) => log.group("g", v)),
      c("group({ consumer })", "options.consumer", bad.str(256), (v) => log.group("g", { consumer: v })),
      c("group({ startAt })", "options.startAt", bad.optional(bad.oneOf(["start", "end"])), (v) =>
        log.group("g", { consumer: "c", startAt: v }),
      ),
      c("consume(handler)", "handler", bad.func(), (v) => consume(v, {})),
      c("consume(options)", "options", bad.options(), (v) => consume(() => {}, v)),
      c("consume({ concurrency })", "options.concurrency", bad.optional(bad.int(1, 1_000)), (v) =>
        consume(() => {}, { concurrency: v }),
      ),
      c("consume({ claimIdleMs })", "options.claimIdleMs", bad.optional(bad.duration(10, DAY_MS)), (v) =>
        consume(() => {}, { claimIdleMs: v }),
      ),
      c("consume({ maxDeliveries })", "options.maxDeliveries", bad.optional(bad.int(1, 1_000)), (v) =>
        consume(() => {}, { maxDeliveries: v }),
      ),
      c("consume({ batch })", "options.batch", bad.optional(bad.int(1, 1_000)), (v) => consume(() => {}, { batch: v })),
      c("consume({ blockMs })", "options.blockMs", bad.optional(bad.duration(10, 60_000)), (v) =>
        consume(() => {}, { blockMs: v }),
      ),
      c("consume({ claimIntervalMs })", "options.claimIntervalMs", bad.optional(bad.duration(10, DAY_MS)), (v) =>
        consume(() => {}, { claimIntervalMs: v }),
      ),
      c("deadLetters(options)", "options", bad.options(), (v) => log.deadLetters(v)),
      c("deadLetters({ after })", "options.after", bad.optional(bad.streamId()), (v) => log.deadLetters({ after: v })),
      c("deadLetters({ limit })", "options.limit", bad.optional(bad.int(1, MAX_READ_LIMIT)), (v) =>
        log.deadLetters({ limit: v }),
      ),
      // Unknown option keys (typos) are named, at every level, instead of silently meaning the default.
      typo("EventLog({ <typo> })", "options", ["prefx", "maxLength", "ttlMs", "chained"], (v) => make(v)),
      typo("EventLog({ chain: { <typo> } })", "options.chain", ["keyid", "previous"], (v) =>
        make({ chain: { key: "k".repeat(32), keyId: "k1", ...v } }),
      ),
      typo("EventLog({ batch: { <typo> } })", "options.batch", ["maxsize", "delayMs"], (v) => make({ batch: v })),
      typo("EventLog({ durability: { <typo> } })", "options.durability", ["replica", "fsync"], (v) =>
        make({ durability: { replicas: 1, timeoutMs: 100, ...v } }),
      ),
      typo("append({ <typo> })", "options", ["idempotency", "key"], (v) => log.append({ a: 1 }, v)),
      typo("read({ <typo> })", "options", ["afterId", "count", "order"], (v) => log.read(v)),
      typo("tail({ <typo> })", "options", ["start", "block"], (v) => log.tail(v)),
      typo("group({ <typo> })", "options", ["start", "name"], (v) => log.group("g", { consumer: "c", ...v })),
      typo("consume({ <typo> })", "options", ["concurency", "maxRetries"], (v) => consume(() => {}, v)),
      typo("deadLetters({ <typo> })", "options", ["count", "before"], (v) => log.deadLetters(v)),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await Promise.all(started.map((s) => s.stop()));
    }
    expect(started).toHaveLength(0);
  });

  it("eventlog: every cursor a read accepts gives a page (the entries strictly between), never a Redis error", async () => {
    const log = new EventLog<number>(redis, "cursor-edges", { prefix });
    for (let i = 0; i < 3; i++) await log.append(i);
    const all = (await log.read()).entries;
    const MAX = U64.toString();
    const [ms = "0", seq = "0"] = (all[1]?.id ?? "0-0").split("-");
    const u64 = fc.bigInt({ min: 0n, max: U64 });
    const cursor = fc.oneof(
      fc.constantFrom(
        "0",
        "0-0",
        "0-1",
        MAX,
        `${MAX}-${MAX}`,
        `${MAX}-0`,
        `0-${MAX}`,
        ms,
        `${ms}-${seq}`,
        `${ms}-${BigInt(seq) + 1n}`,
        `${BigInt(ms) - 1n}-${MAX}`,
        ...all.map((e) => e.id),
      ),
      u64.map(String),
      fc.tuple(u64, u64).map(([a, b]) => `${a}-${b}`),
      fc.tuple(fc.constantFrom(BigInt(ms)), u64).map(([a, b]) => `${a}-${b}`),
      badStrings(40),
      fc.constantFrom("-", "+", "$", ">", "(1-0", "1-", "18446744073709551616", `0-${U64 + 1n}`),
    );
    const id = (c: string) => (c.includes("-") ? c : `${c}-0`);
    const cmp = (a: string, b: string) => {
      const [am, as] = id(a).split("-").map(BigInt) as [bigint, bigint];
      const [bm, bs] = id(b).split("-").map(BigInt) as [bigint, bigint];
      return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
    };
    await fc.assert(
      fc.asyncProperty(
        fc.option(cursor, { nil: undefined }),
        fc.option(cursor, { nil: undefined }),
        fc.boolean(),
        async (after, before, reverse) => {
          const options = { ...(after === undefined ? {} : { after }), ...(before === undefined ? {} : { before }) };
          const err = await outcomeOf(() => log.read({ ...options, reverse } as never));
          const valid = (after === undefined || isStreamId(after)) && (before === undefined || isStreamId(before));
          if (!valid) {
            expect(err).toBeInstanceOf(InvalidArgumentError);
            return;
          }
          expect(err).toBe(ACCEPTED);
          const page = await log.read({ ...options, reverse } as never);
          const between = all
            .filter(
              (e) =>
                (after === undefined || cmp(e.id, after as string) > 0) &&
                (before === undefined || cmp(e.id, before as string) < 0),
            )
            .map((e) => e.id);
          expect(page.entries.map((e) => e.id)).toEqual(reverse ? between.reverse() : between);
          expect(await outcomeOf(() => log.deadLetters(after === undefined ? {} : { after: after as string }))).toBe(
            ACCEPTED,
          );
        },
      ),
      { numRuns: NUM_RUNS * 10 },
    );
  });
});
