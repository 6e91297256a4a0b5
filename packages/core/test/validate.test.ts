import { InvalidArgumentError, MAX_DURATION_MS, validate } from "@coordis/core";
import fc from "fast-check";
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
    expect(validate.abortSignal("signal", undefined)).toBeUndefined();
    expect(argumentOf(() => validate.abortSignal("signal", {}))).toBe("signal");
    expect(argumentOf(() => validate.func("fn", 1))).toBe("fn");
  });
});
