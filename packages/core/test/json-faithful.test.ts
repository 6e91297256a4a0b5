import { faithfulJsonText, jsonCodec } from "@coordis/core";
import { describe, expect, it } from "vitest";

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

/** A type that declares its JSON form, as Decimal, ObjectId or Luxon's DateTime do. */
class Money {
  constructor(private readonly cents: bigint) {}
  toJSON(): string {
    return `${this.cents / 100n}.${String(this.cents % 100n).padStart(2, "0")}`;
  }
}

class Empty {}

/** The TypeError message `faithfulJsonText` throws for `value`, or "accepted". */
function refusal(value: unknown, argument?: string): string {
  try {
    faithfulJsonText(value, argument);
    return "accepted";
  } catch (err) {
    expect(err).toBeInstanceOf(TypeError);
    return (err as Error).message;
  }
}

describe("faithfulJsonText: what JSON stores faithfully, refusing what it would change or drop", () => {
  it("gives JSON.stringify's text for what JSON.parse gives back (up to JSON's rules)", () => {
    const accepted: unknown[] = [
      "text",
      0,
      -1.5,
      true,
      null,
      [],
      {},
      [1, "x", null, { a: [null] }],
      { s: "{} null", n: null, o: {}, e: undefined, f: () => 1, sym: Symbol("x") },
      Object.create(null),
      new Point(1, 2),
      { at: new Point(3, 4), list: [new Point(0, 0)] },
      new Date(0),
      { joined: new Date(Date.UTC(2026, 0, 2)) },
      new Money(150n),
      { price: new Money(99n), prices: [new Money(1n)] },
      { boxed: [new Number(1), new String("s"), new Boolean(false)] },
      { buffer: Buffer.from("hi") },
    ];
    for (const value of accepted) expect(faithfulJsonText(value)).toBe(JSON.stringify(value));
    expect(faithfulJsonText(new Point(1, 2))).toBe('{"x":1,"y":2}');
    expect(faithfulJsonText({ price: new Money(150n) })).toBe('{"price":"1.50"}');
    expect(faithfulJsonText(new Date(0))).toBe('"1970-01-01T00:00:00.000Z"');
  });

  it("refuses with a TypeError naming where: what JSON stores as null or {}, what it cannot encode", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const cases: [unknown, string][] = [
      [{ tags: new Set(["a"]) }, "value.tags is a Set, which JSON stores as {}"],
      [new Map([["a", 1]]), "value is a Map, which JSON stores as {}"],
      [{ deep: [{ err: new Error("x") }] }, "value.deep[0].err is an Error, which JSON stores as {}"],
      [{ e: new Empty() }, "value.e is an Empty, which JSON stores as {}"],
      [Number.NaN, "value is NaN, which JSON stores as null"],
      [{ r: Number.POSITIVE_INFINITY }, "value.r is Infinity, which JSON stores as null"],
      [[Number.NEGATIVE_INFINITY], "value[0] is -Infinity, which JSON stores as null"],
      [{ n: new Number(Number.NaN) }, "value.n is NaN, which JSON stores as null"],
      [{ at: new Date(Number.NaN) }, "value.at is an invalid Date, which JSON stores as null"],
      [[1, undefined], "value[1] is undefined, which JSON stores as null in an array"],
      [[() => 1], "value[0] is a function, which JSON stores as null in an array"],
      [{ s: [Symbol("s")] }, "value.s[0] is a symbol, which JSON stores as null in an array"],
      // biome-ignore lint/suspicious/noSparseArray: a hole is what is tested
      [[1, , 2], "value[1] is undefined"],
      [{ n: 10n }, "value.n is a BigInt"],
      [cyclic, "value.self is a circular reference"],
      [undefined, "value is undefined, which JSON cannot encode"],
      [() => 1, "value is a function, which JSON cannot encode"],
      [Symbol("s"), "value is a symbol, which JSON cannot encode"],
      [{ toJSON: () => Number.NaN }, "value is NaN, which JSON stores as null"],
      [{ toJSON: () => undefined }, "value is an object whose toJSON() returns undefined, which JSON cannot encode"],
      [{ a: { toJSON: () => new Set() } }, "value.a is a Set, which JSON stores as {}"],
    ];
    for (const [value, message] of cases) expect(refusal(value), message).toContain(message);
  });

  it("names the value as the caller's argument when given", () => {
    expect(refusal({ badges: new Map() }, "meta")).toContain("meta.badges is a Map, which JSON stores as {}");
    expect(refusal([Number.NaN], "items[2].meta")).toContain("items[2].meta[0] is NaN");
    expect(refusal(undefined, "message")).toContain("message is undefined");
  });

  it("follows toJSON as JSON.stringify does, with the same key", () => {
    const keys: string[] = [];
    const spy = {
      toJSON: (key: string) => {
        keys.push(key);
        return null;
      },
    };
    // The walk (the text holds null) calls toJSON again, with the key JSON.stringify passed.
    expect(faithfulJsonText({ a: spy, list: [spy] })).toBe('{"a":null,"list":[null]}');
    expect(keys).toEqual(["a", "0", "a", "0"]);
  });

  it("walks the value only when its text holds null or {}: other values cost one JSON.stringify", () => {
    let reads = 0;
    const counted = {
      get n() {
        reads++;
        return 1;
      },
    };
    faithfulJsonText({ counted, s: "plain" });
    expect(reads).toBe(1);
    faithfulJsonText({ counted, z: null });
    expect(reads).toBe(3);
    faithfulJsonText({ counted, o: {} });
    expect(reads).toBe(5);
  });
});

describe("jsonCodec follows the same rule", () => {
  it("stores class instances with fields and toJSON values as JSON gives them", () => {
    expect(jsonCodec.decode(jsonCodec.encode({ p: new Point(1, 2), m: new Money(250n) }))).toEqual({
      p: { x: 1, y: 2 },
      m: "2.50",
    });
  });

  it("refuses what JSON would change, naming where", () => {
    expect(() => jsonCodec.encode({ tags: new Set() })).toThrow("value.tags is a Set, which JSON stores as {}");
    expect(() => jsonCodec.encode({ avg: Number.NaN })).toThrow("value.avg is NaN, which JSON stores as null");
    expect(() => jsonCodec.encode(undefined)).toThrow(TypeError);
  });
});

describe("faithfulJsonText of typed arrays", () => {
  it("refuses one, empty or not, naming where: JSON stores it as an object of its indices, decoded as no array", () => {
    expect(JSON.parse(JSON.stringify(new Float32Array([0.5, 1])))).toEqual({ "0": 0.5, "1": 1 });
    expect(() => faithfulJsonText({ embedding: new Float32Array([0.5, 1]) })).toThrow(
      'value.embedding is a Float32Array, which JSON stores as an object of its indices ({"0":...})',
    );
    expect(() => faithfulJsonText([new Uint8Array([7])], "meta")).toThrow("meta[0] is a Uint8Array");
    expect(() => faithfulJsonText(new Int32Array(0))).toThrow("value is an Int32Array");
  });

  it("stores a Buffer as its toJSON() form, and an object whose first key is 0 as that object", () => {
    expect(faithfulJsonText(Buffer.from([1, 2]))).toBe('{"type":"Buffer","data":[1,2]}');
    expect(faithfulJsonText({ "0": "a", "1": "b" })).toBe('{"0":"a","1":"b"}');
  });
});
