import { InvalidArgumentError, MAX_DURATION_MS, safeRedisOptions, validate } from "@coordis/core";
import fc from "fast-check";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";

function argumentOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).code).toBe("ERR_INVALID_ARGUMENT");
    return (err as InvalidArgumentError).argument;
  }
  return undefined;
}

const notANumber = fc.oneof(
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.bigInt(),
  fc.array(fc.integer()),
  fc.object(),
);

describe("validation helpers", () => {
  it("durationMs accepts whole ms within bounds and rejects everything else, naming the argument", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_DURATION_MS }), (v) => {
        expect(validate.durationMs("ttlMs", v)).toBe(v);
      }),
    );
    fc.assert(
      fc.property(notANumber, (v) => {
        expect(argumentOf(() => validate.durationMs("ttlMs", v))).toBe("ttlMs");
      }),
    );
    for (const v of [0, -1, 1.5, MAX_DURATION_MS + 1])
      expect(argumentOf(() => validate.durationMs("ttlMs", v))).toBe("ttlMs");
    expect(validate.durationMs("waitMs", 0, { min: 0 })).toBe(0);
  });

  it("durationMs names the range in every refusal, and the default when given", () => {
    const message = (v: unknown, bounds?: { min?: number; max?: number; defaultMs?: number }) => {
      try {
        validate.durationMs("beatMs", v, bounds);
      } catch (err) {
        return (err as Error).message;
      }
      return "accepted";
    };
    for (const v of [0, 1.5, -3, Number.NaN, "10", null, undefined, MAX_DURATION_MS + 1])
      expect(message(v)).toContain(`whole milliseconds from 1 to ${MAX_DURATION_MS}, got `);
    expect(message(1.5)).toMatch(/got 1\.5$/);
    expect(message("10")).toMatch(/got "10"$/);
    expect(message(99, { min: 100, max: 600_000, defaultMs: 5_000 })).toContain(
      "whole milliseconds from 100 to 600000 (default 5000), got 99",
    );
  });

  it("positiveInteger, integer and finiteNumber", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1 }), (v) => {
        expect(validate.positiveInteger("n", v)).toBe(v);
      }),
    );
    fc.assert(
      fc.property(fc.integer({ max: 0 }), (v) => {
        expect(argumentOf(() => validate.positiveInteger("n", v))).toBe("n");
      }),
    );
    expect(argumentOf(() => validate.positiveInteger("n", 2 ** 53))).toBe("n");
    expect(argumentOf(() => validate.positiveInteger("n", 11, 10))).toBe("n");
    expect(argumentOf(() => validate.integer("i", 0.5))).toBe("i");
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (v) => {
        expect(validate.finiteNumber("x", v)).toBe(v);
      }),
    );
    fc.assert(
      fc.property(notANumber, (v) => {
        expect(argumentOf(() => validate.finiteNumber("x", v))).toBe("x");
      }),
    );
    expect(argumentOf(() => validate.finiteNumber("x", 5, { max: 4 }))).toBe("x");
  });

  it("integer, positiveInteger and finiteNumber name the whole range in every refusal", () => {
    const message = (check: () => unknown) => {
      try {
        check();
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgumentError);
        return (err as Error).message;
      }
      return "accepted";
    };
    // A wrong type, a fraction, and a value on either side of the range: each says what is allowed.
    for (const v of ["5", 1.5, 0, 101, Number.NaN, null])
      expect(message(() => validate.integer("options.limit", v, { min: 1, max: 100 }))).toMatch(
        /^Invalid argument "options\.limit": expected an integer from 1 to 100, got /,
      );
    for (const v of [0.5, -1, "3"])
      expect(message(() => validate.positiveInteger("count", v))).toContain("expected an integer of at least 1, got ");
    expect(message(() => validate.positiveInteger("count", 11, 10))).toContain("from 1 to 10, got 11");
    for (const v of [Number.POSITIVE_INFINITY, 1.5, -0.5, undefined])
      expect(message(() => validate.finiteNumber("ratio", v, { min: 0, max: 1 }))).toContain(
        "expected a finite number from 0 to 1, got ",
      );
    expect(message(() => validate.finiteNumber("x", Number.NaN, { max: 4 }))).toContain("of at most 4, got NaN");
  });

  it("string checks UTF-8 size and well-formedness", () => {
    expect(validate.string("s", "héllo", { maxBytes: 6 })).toBe("héllo");
    expect(argumentOf(() => validate.string("s", "héllo", { maxBytes: 5 }))).toBe("s");
    expect(argumentOf(() => validate.string("s", ""))).toBe("s");
    expect(argumentOf(() => validate.string("s", "\uDC00"))).toBe("s");
    expect(argumentOf(() => validate.string("s", 5))).toBe("s");
  });

  it("oneOf, boolean, options, abortSignal, func", () => {
    expect(validate.oneOf("algorithm", "gcra", ["gcra", "token-bucket"] as const)).toBe("gcra");
    expect(argumentOf(() => validate.oneOf("algorithm", "leaky", ["gcra"] as const))).toBe("algorithm");
    expect(argumentOf(() => validate.boolean("b", "true"))).toBe("b");
    expect(validate.options("opts", undefined)).toEqual({});
    for (const v of [null, [], 1, "x"]) expect(argumentOf(() => validate.options("opts", v))).toBe("opts");
    // Objects that would pass as {} (no own keys), among them an AbortSignal given where options go.
    for (const v of [new AbortController().signal, Promise.resolve(), new Date(), new Map(), new Set(), /x/]) {
      expect(argumentOf(() => validate.options("opts", v, ["signal"]))).toBe("opts");
    }
    expect(() => validate.options("opts", new AbortController().signal)).toThrow(/pass it as \{ signal \}/);
    expect(validate.options("opts", Object.create(null))).toEqual({});
    expect(validate.abortSignal("signal", undefined)).toBeUndefined();
    expect(argumentOf(() => validate.abortSignal("signal", {}))).toBe("signal");
    expect(argumentOf(() => validate.func("fn", 1))).toBe("fn");
  });
});

describe("validate.redisClient", () => {
  /** The process warnings emitted while `work` runs (they are delivered on the next tick). */
  async function warningsDuring(work: () => void): Promise<Error[]> {
    const seen: Error[] = [];
    const listener = (w: Error) => void seen.push(w);
    process.on("warning", listener);
    try {
      work();
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", listener);
    }
    return seen.filter((w) => (w as { code?: string }).code === "COORDIS_UNSAFE_CLIENT");
  }

  it("warns once per unsafe client, naming the problems and the fix; a safe client and a non-client are not warned about", async () => {
    const unsafe = new Redis({ lazyConnect: true });
    const safe = new Redis({ lazyConnect: true, ...safeRedisOptions });
    try {
      const first = await warningsDuring(() => {
        validate.redisClient("redis", unsafe);
        validate.redisClient("redis", unsafe);
      });
      expect(first).toHaveLength(1);
      expect(first[0]?.message).toMatch(/no commandTimeout/);
      expect(first[0]?.message).toMatch(/re-sends unanswered commands/);
      expect(first[0]?.message).toMatch(/safeRedisOptions|connect\(\)/);
      expect(first[0]?.name).toBe("CoordisWarning");
      expect(await warningsDuring(() => validate.redisClient("redis", unsafe))).toHaveLength(0);
      expect(await warningsDuring(() => validate.redisClient("redis", safe))).toHaveLength(0);
      expect(
        await warningsDuring(() => validate.redisClient("redis", { evalsha() {}, eval() {} } as unknown as Redis)),
      ).toHaveLength(0);
    } finally {
      unsafe.disconnect();
      safe.disconnect();
    }
  });

  it("a value that is no client is refused, described with the right article", () => {
    expect(() => validate.redisClient("redis", {})).toThrow(/got an object/);
    expect(() => validate.redisClient("redis", () => 1)).toThrow(/got a function/);
  });

  it("thrownText: an Error's name and message, another value's string form, a formless one by its type; capped", () => {
    expect(validate.thrownText(new TypeError("boom"), 100)).toBe("TypeError: boom");
    expect(validate.thrownText("disk full", 100)).toBe("disk full");
    expect(validate.thrownText(42, 100)).toBe("42");
    expect(validate.thrownText(Object.create(null), 100)).toBe("an object without a string form");
    const getterThrows = new Error("x");
    Object.defineProperty(getterThrows, "message", {
      get() {
        throw new Error("no message");
      },
    });
    expect(validate.thrownText(getterThrows, 100)).toBe("an object without a string form");
    expect(validate.thrownText(new Error("y".repeat(50)), 10)).toBe("Error: yyy");
    expect(validate.thrownText(Symbol("s"), 100)).toBe("Symbol(s)");
    // Never cut inside a surrogate pair ("😀" is two UTF-16 code units): the whole character goes.
    expect(validate.thrownText("abc😀", 4)).toBe("abc");
    expect(validate.thrownText("abc😀", 5)).toBe("abc😀");
    expect(validate.thrownText("ab😀c", 4)).toBe("ab😀");
  });
});
