/**
 * The harness of the bad-input suite (one test file per package next to it): fast-check properties over the
 * arguments of every public constructor and method of the primitives. Each invalid value must be rejected with
 * `InvalidArgumentError` (code `ERR_INVALID_ARGUMENT`, `.argument` naming the argument) before anything reaches Redis:
 * every batch runs inside `countCommands` on a server of the test file's own ({@link useServer}) and must cost zero
 * round trips. Generators mix wrong types, NaN/±Infinity, fractions where integers belong, out-of-range numbers, huge
 * and unicode strings (lone surrogates, braces), and wrong shapes; values the API would accept are filtered out by a
 * predicate that mirrors the documented contract.
 * An explicit `null` for an optional option is bad input too (it never silently means "use the default").
 */
import { InvalidArgumentError, type RedisClient } from "@coordis/core";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import fc from "fast-check";
import { afterAll, beforeAll, expect } from "vitest";

export const prefix = testPrefix("bad");
/** Runs per case; raise it (e.g. COORDIS_FC_RUNS=1000) for a deeper search. */
export const NUM_RUNS = Number(process.env.COORDIS_FC_RUNS ?? 30);
export const DAY_MS = 86_400_000;
export const MAX_DURATION = 365 * DAY_MS;

// ---------------------------------------------------------------------------------------------------------------
// Predicates mirroring the documented contract (what the API must accept) and generators of everything else.

export const bytes = (s: string) => Buffer.byteLength(s, "utf8");
export const isStr = (v: unknown, maxBytes: number, minBytes = 1): v is string =>
  typeof v === "string" && v.isWellFormed() && bytes(v) >= minBytes && bytes(v) <= maxBytes;
export const isName = (v: unknown, maxBytes = 512) => isStr(v, maxBytes) && !/[{}]/.test(v as string);
export const isPrefix = (v: unknown) => typeof v === "string" && /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(v);
export const isInt = (v: unknown, min: number, max: number) =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
export const isFiniteIn = (v: unknown, min: number, max: number) =>
  typeof v === "number" && Number.isFinite(v) && v >= min && v <= max;
export const isOneOf = (list: readonly unknown[]) => (v: unknown) => list.includes(v);
export const isBool = (v: unknown) => typeof v === "boolean";
export const isOptions = (v: unknown) => v === undefined || (v !== null && typeof v === "object" && !Array.isArray(v));
export const isPlainObject = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);
export const isFunc = (v: unknown) => typeof v === "function";
export const isChannel = (v: unknown) => isStr(v, 256) && !/[\s\p{Cc}*?[\]\\{}]/u.test(v as string);
export const isPattern = (v: unknown) => isStr(v, 256) && !/[\s\p{Cc}{}]/u.test(v as string);
/** `subscribe(channel | pattern)`: a name with a glob character is a pattern, any other must be a channel name. */
export const isChannelOrPattern = (v: unknown) =>
  typeof v === "string" && /[*?[]/.test(v) ? isPattern(v) : isChannel(v);
export const U64 = 2n ** 64n - 1n;
export const isStreamId = (v: unknown) => {
  const m = typeof v === "string" ? /^(\d{1,20})(?:-(\d{1,20}))?$/.exec(v) : null;
  return m !== null && BigInt(m[1] as string) <= U64 && BigInt(m[2] ?? "0") <= U64;
};
export const isJsonable = (v: unknown, maxBytes: number) => {
  try {
    const text = JSON.stringify(v);
    return text !== undefined && bytes(text) <= maxBytes;
  } catch {
    return false;
  }
};

export const cyclic: Record<string, unknown> = { a: 1 };
cyclic.self = cyclic;

/** Wrong types and shapes for any argument. */
/**
 * Objects an error message cannot turn into text (String(v) or a template literal throws, or there is no toString):
 * a rejection must describe them without converting them.
 */
export const hostile: readonly unknown[] = [
  { toString: [] },
  {
    toString() {
      throw new Error("toString");
    },
  },
  {
    [Symbol.toPrimitive]() {
      throw new Error("toPrimitive");
    },
  },
  Object.create(null),
];

export const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...hostile),
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
export function badStrings(maxBytes: number): fc.Arbitrary<unknown> {
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
export function badNumbers(min: number, max: number): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.double(),
    fc.integer(),
    fc.double({ min: Math.max(min, -1e15), max: Math.min(max, 1e15), noNaN: true }),
    fc.constantFrom(min - 1, max + 1, min + 0.5, max - 0.5, 2 ** 53, -(2 ** 53), Number.EPSILON, -Number.EPSILON),
  );
}

/** Observers must be plain objects whose onOperation/onEvent, when present, are functions. */
export const isObserver = (v: unknown) =>
  isPlainObject(v) &&
  ["onOperation", "onEvent"].every((m) => {
    const f = (v as Record<string, unknown>)[m];
    return f === undefined || typeof f === "function";
  });

/** Arbitrary of values `valid` rejects, drawn from junk plus the given near misses. */
export function invalid(valid: (v: unknown) => boolean, ...nearMisses: fc.Arbitrary<unknown>[]): fc.Arbitrary<unknown> {
  return fc.oneof(junk, ...nearMisses).filter((v) => !valid(v));
}

export const bad = {
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

export interface Case {
  /** What is called, e.g. `Mutex(redis, name)`. */
  readonly what: string;
  /** The argument the error must name: exact string, or a pattern. */
  readonly argument: string | RegExp;
  /** Invalid values for it. */
  readonly values: fc.Arbitrary<unknown>;
  /** Calls the function with `v` in the argument's place and valid values elsewhere. */
  readonly call: (v: never) => unknown;
}

export const c = (
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

export const ACCEPTED = Symbol("accepted");

/** Runs `call` (sync or async) and returns what it threw or rejected with, or ACCEPTED. */
export async function outcomeOf(call: () => unknown): Promise<unknown> {
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

export function show(v: unknown): string {
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
export async function assertRejected(cases: readonly Case[], numRuns = NUM_RUNS): Promise<void> {
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

export let server: RedisServer;
export let redis: RedisClient;

/**
 * Starts this file's own least-privilege server (and a client on it, connected before any counted block, so no
 * handshake lands inside one) before its tests and stops it after them. Call it once at the top of a test file.
 */
export function useServer(): void {
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    await server?.stop();
  });
}

/** Runs the cases in one countCommands block and asserts that none of them reached Redis. */
export async function rejectedWithoutCommands(cases: readonly Case[], numRuns = NUM_RUNS): Promise<void> {
  const counted = await countCommands(server, () => assertRejected(cases, numRuns));
  expect(counted.sent).toEqual({});
  expect(counted.roundTrips).toBe(0);
}

// ---------------------------------------------------------------------------------------------------------------
