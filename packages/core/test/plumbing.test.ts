import {
  aclRules,
  ClosedError,
  CoordisError,
  encodeText,
  errorOf,
  InvalidArgumentError,
  instrument,
  jsonCodec,
  jsonText,
  keyHead,
  parseCodec,
  RedisUnavailableError,
  randomToken,
  reportOperation,
  ScriptError,
  toCoordisError,
  validate,
} from "@coordis/core";
import { recordObserver } from "@coordis/testing";
import { describe, expect, it } from "vitest";

function argumentOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as InvalidArgumentError).argument;
  }
  return undefined;
}

describe("instrument / reportOperation", () => {
  it("reports a result with its outcome, name, attributes and a duration", async () => {
    const rec = recordObserver();
    const site = { primitive: "demo", op: "get", name: "k1", attributes: { namespace: "ns" } };
    const value = await instrument(rec, site, async () => 42, { outcome: (n) => (n > 0 ? "hit" : "miss") });
    expect(value).toBe(42);
    expect(rec.ops).toHaveLength(1);
    expect(rec.ops[0]).toMatchObject({ primitive: "demo", op: "get", outcome: "hit", name: "k1" });
    expect(rec.ops[0]?.attributes).toEqual({ namespace: "ns" });
    expect(rec.ops[0]?.durationMs).toBeGreaterThanOrEqual(0);
    expect(rec.ops[0]).not.toHaveProperty("error");
    await instrument(rec, { primitive: "demo", op: "set" }, () => "sync");
    expect(rec.ops[1]).toMatchObject({ outcome: "ok" });
    expect(rec.ops[1]).not.toHaveProperty("name");
  });

  it("converts a rejection to a CoordisError by default, keeps it with errors: keep, and reports it", async () => {
    const rec = recordObserver();
    const down = new Error("connect ECONNREFUSED 127.0.0.1:1");
    const converted = await instrument(rec, { primitive: "demo", op: "x" }, () => Promise.reject(down)).catch(
      (e: unknown) => e,
    );
    expect(converted).toBeInstanceOf(RedisUnavailableError);
    expect((converted as Error).cause).toBe(down);
    const refused = await instrument(rec, { primitive: "demo", op: "x" }, () => Promise.reject(new Error("NOPERM")), {
      script: "demo/x",
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ScriptError);
    expect((refused as ScriptError).script).toBe("demo/x");
    const mine = new TypeError("loader failed");
    const kept = await instrument(
      rec,
      { primitive: "demo", op: "load" },
      () => {
        throw mine;
      },
      { errors: "keep" },
    ).catch((e: unknown) => e);
    expect(kept).toBe(mine);
    expect(rec.ops.map((o) => o.outcome)).toEqual(["error", "error", "error"]);
    expect(rec.ops.map((o) => o.error)).toEqual([converted, refused, mine]);
  });

  it("an observer that throws or lacks onOperation never breaks the operation", async () => {
    const throwing = {
      onOperation: () => {
        throw new Error("observer bug");
      },
    };
    await expect(instrument(throwing, { primitive: "demo", op: "x" }, async () => 1)).resolves.toBe(1);
    await expect(instrument({}, { primitive: "demo", op: "x" }, async () => 2)).resolves.toBe(2);
    await expect(instrument(undefined, { primitive: "demo", op: "x" }, async () => 3)).resolves.toBe(3);
    const rec = recordObserver();
    reportOperation(rec, { primitive: "demo", op: "y" }, performance.now() - 5, "busy", "not an error");
    expect(rec.ops[0]).toMatchObject({ outcome: "busy" });
    expect(rec.ops[0]?.durationMs).toBeGreaterThanOrEqual(5);
    expect(rec.ops[0]).not.toHaveProperty("error");
  });
});

describe("ClosedError, errorOf", () => {
  it("ClosedError is a CoordisError with ERR_CLOSED or the code it is given", () => {
    const plain = new ClosedError("Widget");
    expect(plain).toBeInstanceOf(CoordisError);
    expect(plain.code).toBe("ERR_CLOSED");
    expect(plain.message).toBe("this Widget was closed");
    expect(plain.name).toBe("ClosedError");
    expect(new ClosedError("Cache", { code: "ERR_CACHE_CLOSED" }).code).toBe("ERR_CACHE_CLOSED");
  });

  it("errorOf keeps errors and wraps anything else", () => {
    const e = new Error("x");
    expect(errorOf(e)).toBe(e);
    expect(errorOf("boom")).toEqual(new Error("boom"));
    expect(errorOf(undefined).message).toBe("undefined");
  });

  it("errorOf and toCoordisError never throw, even for a thrown value without a string form", () => {
    const bare = Object.create(null) as object;
    const hostile = {
      toString() {
        throw new Error("no string form");
      },
    };
    for (const thrown of [bare, hostile]) {
      expect(errorOf(thrown)).toBeInstanceOf(Error);
      expect(errorOf(thrown).message).toMatch(/without a string form/);
      const converted = toCoordisError(thrown, "test/script");
      expect(converted).toBeInstanceOf(ScriptError);
      expect(converted.message).toMatch(/without a string form/);
    }
  });
});

describe("randomToken", () => {
  it("hands out distinct base64url tokens of the asked size, across pool refills", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const t = randomToken(12);
      expect(t).toMatch(/^[A-Za-z0-9_-]{16}$/);
      seen.add(t);
    }
    expect(seen.size).toBe(2_000);
    expect(randomToken()).toMatch(/^[A-Za-z0-9_-]{22}$/);
    for (const bad of [0, 7, 65, 1.5, Number.NaN]) expect(() => randomToken(bad)).toThrow(RangeError);
  });
});

describe("codecs", () => {
  it("jsonCodec refuses what JSON would change; jsonText only what has no JSON text", () => {
    expect(jsonCodec.decode(jsonCodec.encode({ a: [1, "x", null], d: new Date(0) }))).toEqual({
      a: [1, "x", null],
      d: "1970-01-01T00:00:00.000Z",
    });
    for (const v of [undefined, Number.NaN, { a: Number.POSITIVE_INFINITY }, new Map(), [() => 1], 1n]) {
      expect(() => jsonCodec.encode(v)).toThrow(TypeError);
    }
    expect(jsonText({ a: Number.NaN })).toBe('{"a":null}');
    expect(() => jsonText(undefined)).toThrow(TypeError);
    expect(() => jsonText(() => 1)).toThrow(TypeError);
  });

  it("parseCodec and encodeText name the argument", () => {
    expect(parseCodec("options.codec", undefined, jsonCodec)).toBe(jsonCodec);
    const custom = { encode: String, decode: (t: string) => t };
    expect(parseCodec("options.codec", custom, jsonCodec)).toBe(custom);
    expect(argumentOf(() => parseCodec("options.codec", null, jsonCodec))).toBe("options.codec");
    expect(argumentOf(() => parseCodec("options.codec", { encode: String }, jsonCodec))).toBe("options.codec.decode");
    expect(encodeText(jsonCodec, [1], "value")).toBe("[1]");
    expect(argumentOf(() => encodeText(jsonCodec, Number.NaN, "value"))).toBe("value");
    expect(() => encodeText(jsonCodec, Number.NaN, "value", "cannot be cached")).toThrow(/cannot be cached: /);
    expect(argumentOf(() => encodeText<unknown>({ encode: () => 1 as never, decode: String }, 1, "message"))).toBe(
      "message",
    );
  });
});

describe("validate.options with the allowed keys", () => {
  it("rejects an unknown key naming it and listing the known ones; known keys and no list pass", () => {
    const allowed = ["ttlMs", "prefix"];
    expect(validate.options("options", { ttlMs: 1, prefix: "p" }, allowed)).toEqual({ ttlMs: 1, prefix: "p" });
    expect(validate.options("options", undefined, allowed)).toEqual({});
    expect(validate.options("options", { anything: 1 })).toEqual({ anything: 1 });
    let caught: unknown;
    try {
      validate.options("options", { ttl: 30 }, allowed);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).argument).toBe("options.ttl");
    expect((caught as Error).message).toContain("known: ttlMs, prefix");
    // An explicit undefined under an unknown name is still a typo.
    expect(argumentOf(() => validate.options("options.lock", { waitMS: undefined }, ["waitMs"]))).toBe(
      "options.lock.waitMS",
    );
    // Inherited properties are not the caller's keys.
    expect(validate.options("options", Object.create({ inherited: 1 }), allowed)).toEqual({});
  });
});

describe("keyHead", () => {
  it("validates prefix and kind once and returns <prefix>:<kind>:", () => {
    expect(keyHead("coordis", "cache")).toBe("coordis:cache:");
    expect(keyHead("app.v2", "cache-tag")).toBe("app.v2:cache-tag:");
    expect(argumentOf(() => keyHead("bad prefix", "cache"))).toBe("prefix");
    expect(argumentOf(() => keyHead("coordis", "Cache"))).toBe("kind");
  });
});

describe("aclRules options", () => {
  it("a misspelt option or a flag that is not a boolean is refused, not silently left out of the rules", () => {
    expect(aclRules({ waitAof: true })).toContain("+waitaof");
    expect(argumentOf(() => aclRules({ waitaof: true } as never))).toBe("options.waitaof");
    expect(argumentOf(() => aclRules({ clusters: true } as never))).toBe("options.clusters");
    expect(argumentOf(() => aclRules({ cluster: "yes" } as never))).toBe("options.cluster");
    expect(argumentOf(() => aclRules({ waitAof: 1 } as never))).toBe("options.waitAof");
    expect(argumentOf(() => aclRules(null as never))).toBe("options");
  });
});
