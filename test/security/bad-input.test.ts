/**
 * Hostile input: fast-check properties over the arguments of every public constructor and method of the primitives.
 * Each invalid value must be rejected with `InvalidArgumentError` (code `ERR_INVALID_ARGUMENT`, `.argument` naming
 * the argument) before anything reaches Redis: every batch runs inside `countCommands` on a server of this file's
 * own and must cost zero round trips. Generators mix wrong types, NaN/±Infinity, fractions where integers belong,
 * out-of-range numbers, huge and unicode strings (lone surrogates, braces), and wrong shapes; values the API would
 * accept are filtered out by a predicate that mirrors the documented contract.
 * An explicit `null` for an optional option is bad input too (it never silently means "use the default").
 */
import { Cache } from "@coordis/cache";
import {
  connect,
  entityKeys,
  hashTagOf,
  InvalidArgumentError,
  parseRedisUrl,
  type RedisClient,
  serverAtLeast,
  slotOf,
} from "@coordis/core";
import { EventLog, MAX_IDEMPOTENCY_KEY_BYTES, MAX_READ_LIMIT } from "@coordis/eventlog";
import { Leaderboard, MAX_BATCH, MAX_META_BYTES, MAX_RADIUS, PERIODS, periodBucket } from "@coordis/leaderboard";
import {
  type Lease,
  MAX_LOCK_MS,
  MAX_PERMITS,
  Mutex,
  Redlock,
  runOncePerTick,
  Semaphore,
  tickHistory,
} from "@coordis/lock";
import { PubSub } from "@coordis/pubsub";
import { ALGORITHMS, ConcurrencyLimiter, MAX_LIMIT, type Permit, RateLimiter, toHeaders } from "@coordis/ratelimit";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("bad");
/** Runs per case; raise it (e.g. COORDIS_FC_RUNS=1000) for a deeper search. */
const NUM_RUNS = Number(process.env.COORDIS_FC_RUNS ?? 30);
const DAY_MS = 86_400_000;
const MAX_DURATION = 365 * DAY_MS;

// ---------------------------------------------------------------------------------------------------------------
// Predicates mirroring the documented contract (what the API must accept) and generators of everything else.

const bytes = (s: string) => Buffer.byteLength(s, "utf8");
const isStr = (v: unknown, maxBytes: number, minBytes = 1): v is string =>
  typeof v === "string" && v.isWellFormed() && bytes(v) >= minBytes && bytes(v) <= maxBytes;
const isName = (v: unknown, maxBytes = 512) => isStr(v, maxBytes) && !/[{}]/.test(v as string);
const isPrefix = (v: unknown) => typeof v === "string" && /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(v);
const isInt = (v: unknown, min: number, max: number) =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
const isFiniteIn = (v: unknown, min: number, max: number) =>
  typeof v === "number" && Number.isFinite(v) && v >= min && v <= max;
const isOneOf = (list: readonly unknown[]) => (v: unknown) => list.includes(v);
const isBool = (v: unknown) => typeof v === "boolean";
const isOptions = (v: unknown) => v === undefined || (v !== null && typeof v === "object" && !Array.isArray(v));
const isPlainObject = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);
const isFunc = (v: unknown) => typeof v === "function";
const isChannel = (v: unknown) => isStr(v, 256) && !/[\s\p{Cc}*?[\]\\{}]/u.test(v as string);
const isPattern = (v: unknown) => isStr(v, 256) && !/[\s\p{Cc}{}]/u.test(v as string);
/** `subscribe(channel | pattern)`: a name with a glob character is a pattern, any other must be a channel name. */
const isChannelOrPattern = (v: unknown) => (typeof v === "string" && /[*?[]/.test(v) ? isPattern(v) : isChannel(v));
const U64 = 2n ** 64n - 1n;
const isStreamId = (v: unknown) => {
  const m = typeof v === "string" ? /^(\d{1,20})(?:-(\d{1,20}))?$/.exec(v) : null;
  return m !== null && BigInt(m[1] as string) <= U64 && BigInt(m[2] ?? "0") <= U64;
};
const isJsonable = (v: unknown, maxBytes: number) => {
  try {
    const text = JSON.stringify(v);
    return text !== undefined && bytes(text) <= maxBytes;
  } catch {
    return false;
  }
};

const cyclic: Record<string, unknown> = { a: 1 };
cyclic.self = cyclic;

/** Wrong types and shapes for any argument. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    undefined,
    null,
    true,
    false,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    0,
    -0,
    -1,
    0.5,
    1.5,
    2 ** 53,
    -(2 ** 53),
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    "",
    " ",
    "{}",
    "{a}",
    "\uD800",
    "a\uDC00b",
    10n,
    Symbol("s"),
    () => 1,
    [],
    [1],
    {},
    new Date(Number.NaN),
    new Map(),
    cyclic,
  ),
  fc.integer(),
  fc.double(),
  fc.bigInt(),
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.array(fc.anything({ maxDepth: 1 }), { maxLength: 3 }),
  fc.object({ maxDepth: 1 }),
);

/** Strings a text argument must reject: empty, lone surrogates, braces, too many bytes (ASCII and multi-byte). */
function badStrings(maxBytes: number): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom("", "\uD83D", "x\uDE00", "{", "}", "a{b}", "x".repeat(maxBytes + 1), "é".repeat(maxBytes)),
    fc.string({ unit: "binary", minLength: 1, maxLength: 16 }),
    fc
      .tuple(fc.string({ maxLength: 8 }), fc.constantFrom("{", "}", "{x}", "}{"), fc.string({ maxLength: 8 }))
      .map((parts) => parts.join("")),
    fc.string({ unit: "grapheme", minLength: Math.ceil(maxBytes / 4), maxLength: maxBytes + 8 }),
    fc.constant("y".repeat(1_000_000)),
  );
}

/** Numbers a numeric argument in `[min, max]` must reject (and some it accepts, filtered out by the predicate). */
function badNumbers(min: number, max: number): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.double(),
    fc.integer(),
    fc.double({ min: Math.max(min, -1e15), max: Math.min(max, 1e15), noNaN: true }),
    fc.constantFrom(min - 1, max + 1, min + 0.5, max - 0.5, 2 ** 53, -(2 ** 53), Number.EPSILON, -Number.EPSILON),
  );
}

/** Observers must be plain objects whose onOperation/onEvent, when present, are functions. */
const isObserver = (v: unknown) =>
  isPlainObject(v) &&
  ["onOperation", "onEvent"].every((m) => {
    const f = (v as Record<string, unknown>)[m];
    return f === undefined || typeof f === "function";
  });

/** Arbitrary of values `valid` rejects, drawn from junk plus the given near misses. */
function invalid(valid: (v: unknown) => boolean, ...nearMisses: fc.Arbitrary<unknown>[]): fc.Arbitrary<unknown> {
  return fc.oneof(junk, ...nearMisses).filter((v) => !valid(v));
}

const bad = {
  name: (maxBytes = 512) => invalid((v) => isName(v, maxBytes), badStrings(maxBytes)),
  str: (maxBytes: number) => invalid((v) => isStr(v, maxBytes), badStrings(maxBytes)),
  prefix: () =>
    invalid(
      isPrefix,
      fc.string({ maxLength: 70 }),
      fc.constantFrom("-x", ".x", "x y", "x{y}", "x".repeat(65), "coordis*", "ç"),
    ),
  /** Optional value: undefined is valid. */
  optional: (arb: fc.Arbitrary<unknown>) => arb.filter((v) => v !== undefined),
  int: (min: number, max: number) => invalid((v) => isInt(v, min, max), badNumbers(min, max)),
  duration: (min: number, max: number) => invalid((v) => isInt(v, min, max), badNumbers(min, max)),
  finite: (min: number, max: number) => invalid((v) => isFiniteIn(v, min, max), badNumbers(min, max)),
  oneOf: (list: readonly unknown[]) =>
    invalid(isOneOf(list), fc.string({ maxLength: 12 }), fc.constantFrom("ALL", " all")),
  bool: () => invalid(isBool, fc.constantFrom("true", "false", 0, 1)),
  options: () => invalid(isOptions),
  func: () => invalid(isFunc),
  channel: () =>
    invalid(isChannel, badStrings(256), fc.constantFrom("a b", "a*", "a?", "a[b]", "a\\b", "a\n", "\u0007")),
  pattern: () => invalid(isPattern, badStrings(256), fc.constantFrom("a b", "a\tb", "a{b}", "\u0000")),
  channelOrPattern: () =>
    invalid(
      isChannelOrPattern,
      badStrings(256),
      fc.constantFrom("a b", "a\\b", "a{b}", "a*{", "a* b", "a\n", "\u0007"),
    ),
  streamId: () =>
    invalid(
      isStreamId,
      fc.constantFrom(
        "-",
        "+",
        "$",
        ">",
        "1-",
        "-1",
        "1-2-3",
        "18446744073709551616-0",
        "0-18446744073709551616",
        "1.5",
      ),
    ),
  client: () => invalid((v) => isPlainObject(v) && isFunc((v as { evalsha?: unknown }).evalsha)),
};

// ---------------------------------------------------------------------------------------------------------------
// The harness.

interface Case {
  /** What is called, e.g. `Mutex(redis, name)`. */
  readonly what: string;
  /** The argument the error must name: exact string, or a pattern. */
  readonly argument: string | RegExp;
  /** Invalid values for it. */
  readonly values: fc.Arbitrary<unknown>;
  /** Calls the function with `v` in the argument's place and valid values elsewhere. */
  readonly call: (v: never) => unknown;
}

const c = (
  what: string,
  argument: string | RegExp,
  values: fc.Arbitrary<unknown>,
  call: (v: never) => unknown,
): Case => ({
  what,
  argument,
  values,
  call,
});

const ACCEPTED = Symbol("accepted");

/** Runs `call` (sync or async) and returns what it threw or rejected with, or ACCEPTED. */
async function outcomeOf(call: () => unknown): Promise<unknown> {
  try {
    const result = call();
    if (result !== null && typeof result === "object" && typeof (result as Promise<unknown>).then === "function") {
      await result;
    }
  } catch (err) {
    return err;
  }
  return ACCEPTED;
}

function show(v: unknown): string {
  if (typeof v === "string" && v.length > 60) return `a string of ${v.length} chars`;
  try {
    return fc.stringify(v);
  } catch {
    return String(v);
  }
}

/**
 * Every invalid value of every case is rejected with InvalidArgumentError naming the argument. All cases run; the
 * failures are reported together (one line per case, with fast-check's shrunk counterexample).
 */
async function assertRejected(cases: readonly Case[], numRuns = NUM_RUNS): Promise<void> {
  const failures: string[] = [];
  for (const k of cases) {
    const details = await fc.check(
      fc.asyncProperty(k.values, async (v) => {
        const err = await outcomeOf(() => k.call(v as never));
        if (err === ACCEPTED) throw new Error(`accepted ${show(v)}`);
        if (!(err instanceof InvalidArgumentError)) {
          throw new Error(`${show(v)} threw ${String(err)} instead of InvalidArgumentError`);
        }
        if (err.code !== "ERR_INVALID_ARGUMENT") throw new Error(`${show(v)}: code ${err.code}`);
        const named = typeof k.argument === "string" ? err.argument === k.argument : k.argument.test(err.argument);
        if (err.argument.length === 0 || !named) {
          throw new Error(`${show(v)} was rejected naming "${err.argument}", expected ${String(k.argument)}`);
        }
        if (!err.message.includes(err.argument)) throw new Error(`message does not name the argument: ${err.message}`);
      }),
      { numRuns },
    );
    if (details.failed) {
      const cause =
        details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      failures.push(`${k.what}: ${cause} (seed ${details.seed})`);
    }
  }
  expect(failures).toEqual([]);
}

let server: RedisServer;
let redis: RedisClient;
const others: RedisClient[] = [];

beforeAll(async () => {
  server = await startRedis({ leastPrivilege: true });
  redis = server.client();
  for (let i = 0; i < 3; i++) others.push(server.client());
  // Connected before any counted block, so no handshake lands inside one.
  await Promise.all([redis, ...others].map((r) => r.ping()));
});

afterAll(async () => {
  await server?.stop();
});

/** Runs the cases in one countCommands block and asserts that none of them reached Redis. */
async function rejectedWithoutCommands(cases: readonly Case[], numRuns = NUM_RUNS): Promise<void> {
  const counted = await countCommands(server, () => assertRejected(cases, numRuns));
  expect(counted.sent).toEqual({});
  expect(counted.roundTrips).toBe(0);
}

// ---------------------------------------------------------------------------------------------------------------

describe("bad input is rejected with InvalidArgumentError and sends nothing", () => {
  it("core: connect, parseRedisUrl, entityKeys", async () => {
    const url = server.url;
    const badUrl = invalid(
      (v) => v === undefined,
      fc.string({ maxLength: 30 }).filter((s) => !s.includes("://")),
      fc.constantFrom(
        "http://127.0.0.1:6379",
        "redis://",
        "redis://h:99999",
        "redis://h:0",
        "redis://a,b",
        "redis://h/x",
        "redis://h/1/2",
        "redis://h#frag",
        "redis://h?unknown=1",
        "redis://h?tls_ca=/x",
        "redis+cluster://h:1/0",
        "redis+sentinel://h:1",
        "redis://%zz@h",
        `${url}?command_timeout_ms=abc`,
        `${url}?command_timeout_ms=0`,
        `${url}?connect_timeout_ms=1.5`,
        `${url.replace("redis://", "rediss://")}?tls_reject_unauthorized=maybe`,
        `${url.replace("redis://", "rediss://")}?tls_ca=/nonexistent/ca.pem`,
      ),
    );
    await rejectedWithoutCommands([
      // A bad ms parameter is named "url command_timeout_ms". parseRedisUrl checks syntax only; the ms and tls_*
      // parameter values and the PEM files are checked by connect() (still before opening anything).
      c("connect(url)", /^url/, badUrl, (v) => connect(v)),
      c(
        "parseRedisUrl(url)",
        /^url/,
        badUrl.filter((v) => typeof v !== "string" || !v.includes(`:${server.port}`)),
        (v) => parseRedisUrl(v),
      ),
      c("connect(url, { commandTimeoutMs })", "options.commandTimeoutMs", bad.optional(bad.duration(1, 600_000)), (v) =>
        connect(url, { commandTimeoutMs: v }),
      ),
      c("connect(url, { connectTimeoutMs })", "options.connectTimeoutMs", bad.optional(bad.duration(1, 600_000)), (v) =>
        connect(url, { connectTimeoutMs: v }),
      ),
      c("entityKeys(prefix)", "prefix", bad.prefix(), (v) => entityKeys(v, "lock", "n")),
      c("entityKeys(name)", "name", bad.name(), (v) => entityKeys("p", "lock", v)),
      c(
        "entityKeys(kind)",
        "kind",
        invalid((v) => typeof v === "string" && /^[a-z][a-z0-9-]{0,31}$/.test(v)),
        (v) => entityKeys("p", v, "n"),
      ),
      c(
        "connect(url, options)",
        "options",
        invalid((v) => v === undefined || isPlainObject(v)),
        (v) => connect(url, v as never),
      ),
      c(
        "serverAtLeast(redis, minVersion)",
        "minVersion",
        invalid((v) => typeof v === "string" && /^\d+(\.\d+){0,2}$/.test(v)),
        (v) => serverAtLeast(redis, v as never),
      ),
      c(
        "hashTagOf(key)",
        "key",
        invalid((v) => typeof v === "string"),
        (v) => hashTagOf(v as never),
      ),
      c(
        "slotOf(key)",
        "key",
        invalid((v) => typeof v === "string"),
        (v) => slotOf(v as never),
      ),
    ]);
    // runScript(redis, script, keys, args) is the low-level building block the primitives call after validating;
    // it does not validate its arguments itself (documented).
  });

  it("lock: Mutex, Semaphore, Redlock, leases, runOncePerTick, tickHistory", async () => {
    const o = { prefix };
    const mutex = new Mutex(redis, "bad-input", { ...o, ttlMs: 60_000 });
    const lease: Lease = await mutex.acquire({ waitMs: 1_000 });
    const nodes = [redis, ...others.slice(0, 2)];
    const ttl = bad.optional(bad.duration(1, MAX_LOCK_MS));
    const acquireOptions = (call: (opts: unknown) => unknown, at: string) => [
      c(`${at}(options)`, "options", bad.options(), (v) => call(v)),
      c(`${at}({ waitMs })`, "options.waitMs", bad.optional(bad.duration(0, MAX_LOCK_MS)), (v) => call({ waitMs: v })),
      c(`${at}({ signal })`, "options.signal", bad.optional(invalid((v) => v instanceof AbortSignal)), (v) =>
        call({ signal: v }),
      ),
      c(`${at}({ autoExtend })`, "options.autoExtend", bad.optional(bad.bool()), (v) => call({ autoExtend: v })),
    ];
    const cases: Case[] = [
      // Mutex
      c("Mutex(redis)", "redis", bad.client(), (v) => new Mutex(v, "n", o)),
      c("Mutex(name)", "name", bad.name(), (v) => new Mutex(redis, v, o)),
      c("Mutex(options)", "options", bad.options(), (v) => new Mutex(redis, "n", v)),
      c("Mutex({ ttlMs })", "options.ttlMs", ttl, (v) => new Mutex(redis, "n", { ...o, ttlMs: v })),
      c("Mutex({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) => new Mutex(redis, "n", { prefix: v })),
      c(
        "Mutex({ observer })",
        "options.observer",
        bad.optional(invalid(isObserver)),
        (v) => new Mutex(redis, "n", { ...o, observer: v }),
      ),
      ...acquireOptions((opts) => mutex.acquire(opts as never), "mutex.acquire"),
      c("mutex.using(fn)", "fn", bad.func(), (v) => mutex.using(v)),
      ...acquireOptions((opts) => mutex.using(async () => 1, opts as never), "mutex.using"),
      c("lease.extend(ttlMs)", "ttlMs", ttl, (v) => lease.extend(v)),
      // Semaphore
      c("Semaphore(redis)", "redis", bad.client(), (v) => new Semaphore(v, "n", { ...o, permits: 1 })),
      c("Semaphore(name)", "name", bad.name(), (v) => new Semaphore(redis, v, { ...o, permits: 1 })),
      c("Semaphore(options)", /^options(\.permits)?$/, invalid(isPlainObject), (v) => new Semaphore(redis, "n", v)),
      c(
        "Semaphore({ permits })",
        "options.permits",
        bad.int(1, MAX_PERMITS),
        (v) => new Semaphore(redis, "n", { ...o, permits: v }),
      ),
      c("Semaphore({ ttlMs })", "options.ttlMs", ttl, (v) => new Semaphore(redis, "n", { ...o, permits: 2, ttlMs: v })),
      c(
        "Semaphore({ prefix })",
        "options.prefix",
        bad.optional(bad.prefix()),
        (v) => new Semaphore(redis, "n", { permits: 2, prefix: v }),
      ),
      ...acquireOptions(
        (opts) => new Semaphore(redis, "s", { ...o, permits: 1 }).acquire(opts as never),
        "semaphore.acquire",
      ),
      // Redlock
      c(
        "Redlock(nodes)",
        /^nodes(\[\d+\])?$/,
        fc.oneof(
          invalid((v) => Array.isArray(v) && v.length > 0),
          fc.array(bad.client(), { minLength: 1, maxLength: 3 }),
          fc.constant([redis, redis]),
          fc.constant(Array.from({ length: 65 }, () => ({ evalsha() {} }))),
          fc.constant([redis, null]),
        ),
        (v) => new Redlock(v, "n", o),
      ),
      c("Redlock(name)", "name", bad.name(), (v) => new Redlock(nodes, v, o)),
      c("Redlock(options)", "options", bad.options(), (v) => new Redlock(nodes, "n", v)),
      c("Redlock({ ttlMs })", "options.ttlMs", ttl, (v) => new Redlock(nodes, "n", { ...o, ttlMs: v })),
      c(
        "Redlock({ driftFactor })",
        "options.driftFactor",
        bad.optional(bad.finite(0, 0.5)),
        (v) => new Redlock(nodes, "n", { ...o, driftFactor: v }),
      ),
      c(
        "Redlock({ nodeTimeoutMs })",
        "options.nodeTimeoutMs",
        bad.optional(bad.duration(1, 60_000)),
        (v) => new Redlock(nodes, "n", { ...o, nodeTimeoutMs: v }),
      ),
      c(
        "Redlock({ prefix })",
        "options.prefix",
        bad.optional(bad.prefix()),
        (v) => new Redlock(nodes, "n", { prefix: v }),
      ),
      ...acquireOptions((opts) => new Redlock(nodes, "r", o).acquire(opts as never), "redlock.acquire"),
      // runOncePerTick
      c("runOncePerTick(redis)", "redis", bad.client(), (v) => runOncePerTick(v, "job", 1, () => 1, o)),
      c("runOncePerTick(job)", "job", bad.name(), (v) => runOncePerTick(redis, v, 1, () => 1, o)),
      c(
        "runOncePerTick(tick)",
        "tick",
        invalid(
          (v) => isInt(v, 0, Number.MAX_SAFE_INTEGER) || (v instanceof Date && v.getTime() >= 0),
          badNumbers(0, Number.MAX_SAFE_INTEGER),
          fc.constantFrom(new Date(-1), new Date(Number.NaN), "1", "2024-01-01"),
        ),
        (v) => runOncePerTick(redis, "job", v, () => 1, o),
      ),
      c("runOncePerTick(fn)", "fn", bad.func(), (v) => runOncePerTick(redis, "job", 1, v, o)),
      c("runOncePerTick(options)", "options", bad.options(), (v) => runOncePerTick(redis, "job", 1, () => 1, v)),
      c("runOncePerTick({ ttlMs })", "options.ttlMs", ttl, (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, ttlMs: v }),
      ),
      c("runOncePerTick({ retryOnError })", "options.retryOnError", bad.optional(bad.bool()), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, retryOnError: v }),
      ),
      c(
        "runOncePerTick({ recordTtlMs })",
        "options.recordTtlMs",
        // Valid: 1 s to 365 days and at least ttlMs (30 s by default).
        bad.optional(invalid((v) => isInt(v, 30_000, MAX_DURATION), badNumbers(1_000, MAX_DURATION))),
        (v) => runOncePerTick(redis, "job", 1, () => 1, { ...o, recordTtlMs: v }),
      ),
      c("runOncePerTick({ historyLimit })", "options.historyLimit", bad.optional(bad.int(1, 10_000)), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, historyLimit: v }),
      ),
      c("runOncePerTick({ owner })", "options.owner", bad.optional(bad.str(256)), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, owner: v }),
      ),
      c("runOncePerTick({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { prefix: v }),
      ),
      c("runOncePerTick({ observer })", /^options\.observer/, bad.optional(invalid(isObserver)), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, observer: v }),
      ),
      c("tickHistory(redis)", "redis", bad.client(), (v) => tickHistory(v, "job", o)),
      c("tickHistory(job)", "job", bad.name(), (v) => tickHistory(redis, v, o)),
      c("tickHistory(options)", "options", bad.options(), (v) => tickHistory(redis, "job", v)),
      c("tickHistory({ limit })", "options.limit", bad.optional(bad.int(1, 10_000)), (v) =>
        tickHistory(redis, "job", { ...o, limit: v }),
      ),
      c("tickHistory({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) =>
        tickHistory(redis, "job", { prefix: v }),
      ),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await lease.release();
    }
  });

  it("ratelimit: RateLimiter, ConcurrencyLimiter, permits, toHeaders", async () => {
    const base = { name: "r", limit: 10, windowMs: 1_000 };
    const rules = [base];
    const o = { prefix, rules };
    const limiter = new RateLimiter(redis, o);
    const cl = new ConcurrencyLimiter(redis, { prefix, limit: 5, ttlMs: 60_000 });
    const permit = (await cl.acquire("bad-input")) as Permit;
    expect(permit).not.toBeNull();
    const rule = (patch: Record<string, unknown>) => new RateLimiter(redis, { prefix, rules: [{ ...base, ...patch }] });
    const ruleShape = invalid(isPlainObject);
    const cost = invalid((v) => isInt(v, 1, 10), badNumbers(1, 10));
    const allowedDecision = await limiter.peek("bad-input-decision");
    const cases: Case[] = [
      c("RateLimiter(redis)", "redis", bad.client(), (v) => new RateLimiter(v, { ...o, rules })),
      c(
        "ConcurrencyLimiter(redis)",
        "redis",
        bad.client(),
        (v) => new ConcurrencyLimiter(v, { limit: 1, ttlMs: 1_000 }),
      ),
      c(
        "RateLimiter({ observer })",
        /^options\.observer/,
        bad.optional(invalid(isObserver)),
        (v) => new RateLimiter(redis, { ...o, rules, observer: v }),
      ),
      c(
        "ConcurrencyLimiter({ observer })",
        /^options\.observer/,
        bad.optional(invalid(isObserver)),
        (v) => new ConcurrencyLimiter(redis, { limit: 1, ttlMs: 1_000, observer: v }),
      ),
      c(
        "RateLimiter({ denyCache })",
        "options.denyCache",
        bad.optional(invalid((v) => typeof v === "boolean" || isPlainObject(v))),
        (v) => new RateLimiter(redis, { ...o, rules, denyCache: v }),
      ),
      c("RateLimiter(options)", /^options(\.rules)?$/, invalid(isPlainObject), (v) => new RateLimiter(redis, v)),
      c(
        "RateLimiter({ rules })",
        "options.rules",
        invalid(
          (v) => Array.isArray(v) && v.length > 0 && v.length <= 32,
          fc.constant(Array.from({ length: 33 }, (_, i) => ({ name: `r${i}`, limit: 1, windowMs: 1 }))),
        ),
        (v) => new RateLimiter(redis, { prefix, rules: v }),
      ),
      c(
        "RateLimiter({ rules: [rule] })",
        /^options\.rules\[0\]/,
        ruleShape,
        (v) => new RateLimiter(redis, { prefix, rules: [v] }),
      ),
      c(
        "rule.name",
        "options.rules[0].name",
        bad.optional(invalid((v) => typeof v === "string" && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(v))),
        (v) => rule({ name: v }),
      ),
      c(
        "duplicate rule names",
        "options.rules[1].name",
        fc.constantFrom("fw-1-per-1ms", undefined),
        (v) =>
          // An explicit duplicate, or a default name (derived from the rule: "fw-1-per-1ms") that collides with an
          // explicit one.
          new RateLimiter(redis, {
            prefix,
            rules: [
              { name: "fw-1-per-1ms", limit: 1, windowMs: 1 },
              { name: v, limit: 1, windowMs: 1 },
            ],
          }),
      ),
      c(
        "rule.burst beyond exact integer ticks",
        "options.rules[0].burst",
        // burst × windowMs / gcd(limit, windowMs) must stay below 2^53: at most 285 616 with 1 per 365 days
        fc.integer({ min: 285_617, max: MAX_LIMIT }),
        (v) => rule({ algorithm: v % 2 === 0 ? "token-bucket" : "gcra", limit: 1, windowMs: 31_536_000_000, burst: v }),
      ),
      c("rule.limit", "options.rules[0].limit", bad.int(1, MAX_LIMIT), (v) => rule({ limit: v })),
      c("rule.windowMs", "options.rules[0].windowMs", bad.duration(1, MAX_DURATION), (v) => rule({ windowMs: v })),
      c("rule.algorithm", "options.rules[0].algorithm", bad.optional(bad.oneOf(ALGORITHMS)), (v) =>
        rule({ algorithm: v }),
      ),
      c("rule.burst", "options.rules[0].burst", bad.optional(bad.int(1, MAX_LIMIT)), (v) =>
        rule({ algorithm: "token-bucket", burst: v }),
      ),
      c("rule.burst on a window rule", "options.rules[0].burst", fc.integer({ min: 1, max: 100 }), (v) =>
        rule({ algorithm: v % 2 === 0 ? "fixed-window" : "sliding-window", burst: v }),
      ),
      c(
        "RateLimiter({ prefix })",
        "options.prefix",
        bad.optional(bad.prefix()),
        (v) => new RateLimiter(redis, { rules, prefix: v }),
      ),
      c(
        "RateLimiter({ onRedisError })",
        "options.onRedisError",
        bad.optional(
          invalid(
            (v) =>
              isOneOf(["throw", "fail-open", "fail-closed"])(v) ||
              (isPlainObject(v) && (v as { fallback?: unknown }).fallback === "memory"),
            fc.constantFrom({ fallback: "disk" }, "fail", "THROW"),
          ),
        ),
        (v) => new RateLimiter(redis, { ...o, onRedisError: v }),
      ),
      c(
        "RateLimiter({ onRedisError: { maxKeys } })",
        "options.onRedisError.maxKeys",
        bad.optional(bad.int(1, Number.MAX_SAFE_INTEGER)),
        (v) => new RateLimiter(redis, { ...o, onRedisError: { fallback: "memory", maxKeys: v } }),
      ),
      c(
        "RateLimiter({ redisRetryMs })",
        "options.redisRetryMs",
        bad.optional(bad.duration(0, 600_000)),
        (v) => new RateLimiter(redis, { ...o, redisRetryMs: v }),
      ),
      c(
        "RateLimiter({ failClosedRetryAfterMs })",
        "options.failClosedRetryAfterMs",
        bad.optional(bad.duration(1, MAX_DURATION)),
        (v) => new RateLimiter(redis, { ...o, failClosedRetryAfterMs: v }),
      ),
      c(
        "RateLimiter({ denyCache: { maxKeys } })",
        "options.denyCache.maxKeys",
        bad.optional(bad.int(1, Number.MAX_SAFE_INTEGER)),
        (v) => new RateLimiter(redis, { ...o, denyCache: { maxKeys: v } }),
      ),
      c("limiter.consume(key)", "key", bad.name(), (v) => limiter.consume(v)),
      c("limiter.consume(key, cost)", "cost", bad.optional(cost), (v) => limiter.consume("k", v)),
      c("limiter.peek(key)", "key", bad.name(), (v) => limiter.peek(v)),
      c("limiter.refund(key)", "key", bad.name(), (v) => limiter.refund(v, 1)),
      c("limiter.refund(key, cost)", "cost", cost, (v) => limiter.refund("k", v)),
      c("limiter.reset(key)", "key", bad.name(), (v) => limiter.reset(v)),
      c(
        "ConcurrencyLimiter(options)",
        /^options(\.limit)?$/,
        invalid(isPlainObject),
        (v) => new ConcurrencyLimiter(redis, v),
      ),
      c(
        "ConcurrencyLimiter({ limit })",
        "options.limit",
        bad.int(1, 1_000_000),
        (v) => new ConcurrencyLimiter(redis, { limit: v, ttlMs: 1_000 }),
      ),
      c(
        "ConcurrencyLimiter({ ttlMs })",
        "options.ttlMs",
        bad.duration(1, MAX_DURATION),
        (v) => new ConcurrencyLimiter(redis, { limit: 1, ttlMs: v }),
      ),
      c(
        "ConcurrencyLimiter({ prefix })",
        "options.prefix",
        bad.optional(bad.prefix()),
        (v) => new ConcurrencyLimiter(redis, { limit: 1, ttlMs: 1_000, prefix: v }),
      ),
      c("concurrency.acquire(key)", "key", bad.name(), (v) => cl.acquire(v)),
      c("permit.extend(ttlMs)", "ttlMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) => permit.extend(v)),
      // toHeaders is pure; its rules are validated like the limiter's.
      c(
        "toHeaders(decision, rules)",
        /^rules/,
        invalid((v) => Array.isArray(v) && v.length > 0),
        (v) => toHeaders(allowedDecision, v),
      ),
      c("toHeaders(decision)", /^decision/, bad.options(), (v) => toHeaders(v as never, rules)),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await permit.release();
    }
  });

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

  it("pubsub: constructor, publish, subscribe, psubscribe, redisChannel", async () => {
    const o = { prefix };
    const pubsub = new PubSub(redis, { ...o, maxMessageBytes: 1_024 });
    const handler = () => {};
    const cases: Case[] = [
      c(
        "PubSub(redis)",
        "redis",
        invalid((v) => isPlainObject(v) && isFunc((v as { duplicate?: unknown }).duplicate)),
        (v) => new PubSub(v, o),
      ),
      c("PubSub(options)", "options", bad.options(), (v) => new PubSub(redis, v)),
      c("PubSub({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) => new PubSub(redis, { prefix: v })),
      c(
        "PubSub({ codec })",
        /^options\.codec(\.encode|\.decode)?$/,
        bad.optional(
          fc.oneof(
            invalid(isPlainObject),
            fc.constantFrom({ encode: () => "" }, { decode: () => 1 }, { encode: 1, decode: () => 1 }),
          ),
        ),
        (v) => new PubSub(redis, { ...o, codec: v }),
      ),
      c(
        "PubSub({ queueLimit })",
        "options.queueLimit",
        bad.optional(bad.int(1, 1_000_000)),
        (v) => new PubSub(redis, { ...o, queueLimit: v }),
      ),
      c(
        "PubSub({ maxMessageBytes })",
        "options.maxMessageBytes",
        bad.optional(bad.int(1, 512 * 1024 * 1024)),
        (v) => new PubSub(redis, { ...o, maxMessageBytes: v }),
      ),
      c(
        "PubSub({ observer })",
        /^options\.observer/,
        bad.optional(invalid(isObserver)),
        (v) => new PubSub(redis, { ...o, observer: v }),
      ),
      c(
        "PubSub({ sharded })",
        "options.sharded",
        bad.optional(bad.bool()),
        (v) => new PubSub(redis, { ...o, sharded: v }),
      ),
      c("publish(channel)", "channel", bad.channel(), (v) => pubsub.publish(v, "m")),
      c(
        "publish(message)",
        "message",
        fc.oneof(
          fc.constantFrom<unknown>(undefined, () => 1, Symbol("m"), 10n, cyclic, { n: 1n }),
          fc.string({ minLength: 1_100, maxLength: 1_200 }),
          fc.constant("é".repeat(600)),
        ),
        (v) => pubsub.publish("ch", v),
      ),
      c("subscribe(channel)", "channel", bad.channelOrPattern(), (v) => pubsub.subscribe(v, handler)),
      c("subscribe(handler)", "handler", bad.func(), (v) => pubsub.subscribe("ch", v)),
      c("psubscribe(pattern)", "pattern", bad.pattern(), (v) => pubsub.psubscribe(v, handler)),
      c("psubscribe(handler)", "handler", bad.func(), (v) => pubsub.psubscribe("ch.*", v)),
      c("redisChannel(channel)", "channel", bad.channel(), (v) => pubsub.redisChannel(v)),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await pubsub.close();
    }
  });

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

  it("cache: constructor, getOrSet, get, set, delete, invalidateTag", async () => {
    const o = { prefix, namespace: "bad-input", ttlMs: 60_000 };
    // No bus and no eviction-policy check: this instance sends nothing at start, so only the calls below count.
    const cache = new Cache(redis, { ...o, bus: false, checkEvictionPolicy: false });
    await cache.ready();
    const make = (patch: Record<string, unknown>) => new Cache(redis, { ...o, bus: false, ...patch });
    const loader = async () => 1;
    const tag = invalid((v) => isName(v, 256), badStrings(256));
    const entryOptions = (call: (opts: unknown) => unknown, at: string): Case[] => [
      c(`${at}(options)`, "options", bad.options(), (v) => call(v)),
      c(`${at}({ ttlMs })`, "options.ttlMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) => call({ ttlMs: v })),
      c(`${at}({ staleMs })`, "options.staleMs", bad.optional(bad.duration(0, MAX_DURATION)), (v) =>
        call({ staleMs: v }),
      ),
      c(
        `${at}({ tags })`,
        /^options\.tags(\[\d+\])?$/,
        bad.optional(
          fc.oneof(
            invalid((v) => Array.isArray(v)),
            fc.array(tag, { minLength: 1, maxLength: 3 }),
            fc.constant(Array.from({ length: 33 }, (_, i) => `t${i}`)),
          ),
        ),
        (v) => call({ tags: v }),
      ),
    ];
    const cases: Case[] = [
      c("Cache(redis)", "redis", bad.client(), (v) => new Cache(v, o)),
      c("Cache(options)", /^options(\.namespace)?$/, invalid(isPlainObject), (v) => new Cache(redis, v)),
      c(
        "Cache({ namespace })",
        "options.namespace",
        invalid((v) => typeof v === "string" && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v), badStrings(64)),
        (v) => make({ namespace: v }),
      ),
      c("Cache({ ttlMs })", "options.ttlMs", bad.duration(1, MAX_DURATION), (v) => make({ ttlMs: v })),
      c("Cache({ staleMs })", "options.staleMs", bad.optional(bad.duration(0, MAX_DURATION)), (v) =>
        make({ staleMs: v }),
      ),
      c("Cache({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) => make({ prefix: v })),
      c(
        "Cache({ codec })",
        /^options\.codec(\.encode|\.decode)?$/,
        bad.optional(fc.oneof(invalid(isPlainObject), fc.constantFrom({ encode: () => "" }, { decode: () => 1 }))),
        (v) => make({ codec: v }),
      ),
      c("Cache({ observer })", "options.observer", bad.optional(invalid(isObserver)), (v) => make({ observer: v })),
      c("Cache({ lock })", "options.lock", bad.options(), (v) => make({ lock: v })),
      c("Cache({ lock: { ttlMs } })", "options.lock.ttlMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) =>
        make({ lock: { ttlMs: v } }),
      ),
      c("Cache({ lock: { waitMs } })", "options.lock.waitMs", bad.optional(bad.duration(0, MAX_DURATION)), (v) =>
        make({ lock: { waitMs: v } }),
      ),
      c("Cache({ breaker })", "options.breaker", bad.options(), (v) => make({ breaker: v })),
      c("Cache({ breaker: { failures } })", "options.breaker.failures", bad.optional(bad.int(1, 1_000)), (v) =>
        make({ breaker: { failures: v } }),
      ),
      c(
        "Cache({ breaker: { cooldownMs } })",
        "options.breaker.cooldownMs",
        bad.optional(bad.duration(1, MAX_DURATION)),
        (v) => make({ breaker: { cooldownMs: v } }),
      ),
      c(
        "Cache({ l1 })",
        "options.l1",
        bad.options().filter((v) => v !== false),
        (v) => make({ l1: v }),
      ),
      c("Cache({ l1: { maxEntries } })", "options.l1.maxEntries", bad.optional(bad.int(1, 10_000_000)), (v) =>
        make({ l1: { maxEntries: v } }),
      ),
      c("Cache({ l1: { maxBytes } })", "options.l1.maxBytes", bad.optional(bad.int(1, Number.MAX_SAFE_INTEGER)), (v) =>
        make({ l1: { maxBytes: v } }),
      ),
      c("Cache({ l1: { ttlMs } })", "options.l1.ttlMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) =>
        make({ l1: { ttlMs: v } }),
      ),
      c("Cache({ bus })", "options.bus", bad.optional(bad.bool()), (v) => new Cache(redis, { ...o, bus: v })),
      c("Cache({ checkEvictionPolicy })", "options.checkEvictionPolicy", bad.optional(bad.bool()), (v) =>
        make({ checkEvictionPolicy: v }),
      ),
      c("getOrSet(key)", "key", bad.name(), (v) => cache.getOrSet(v, loader)),
      c("getOrSet(loader)", "loader", bad.func(), (v) => cache.getOrSet("k", v)),
      ...entryOptions((opts) => cache.getOrSet("k", loader, opts as never), "getOrSet"),
      c("get(key)", "key", bad.name(), (v) => cache.get(v)),
      c("set(key)", "key", bad.name(), (v) => cache.set(v, 1)),
      c(
        "set(value)",
        "value",
        fc.constantFrom<unknown>(undefined, () => 1, Symbol("v"), 10n, cyclic, { n: 1n }),
        (v) => cache.set("k", v),
      ),
      ...entryOptions((opts) => cache.set("k", 1, opts as never), "set"),
      c("delete(key)", "key", bad.name(), (v) => cache.delete(v)),
      c("invalidateTag(tag)", "tag", tag, (v) => cache.invalidateTag(v)),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await cache.close();
    }
  });
});
