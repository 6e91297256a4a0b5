import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

/** An ORM entity: a class instance with fields (and methods on its prototype). */
class User {
  constructor(
    readonly id: number,
    readonly name: string,
    readonly joined: Date,
  ) {}
  greet(): string {
    return `hi ${this.name}`;
  }
}

/** A type that declares its JSON form, as Decimal, ObjectId or Luxon's DateTime do. */
class Decimal {
  constructor(private readonly digits: string) {}
  toJSON(): string {
    return this.digits;
  }
}

const JOINED = new Date(Date.UTC(2026, 0, 2));

describe("the default codec: what JSON stores faithfully (class fields, toJSON), nothing JSON would change", () => {
  const clients: RedisClient[] = [];
  let a: Cache;
  let b: Cache;
  beforeAll(async () => {
    const options = { namespace: "json-rule", prefix, ttlMs: 60_000, checkEvictionPolicy: false };
    for (let i = 0; i < 2; i++) clients.push(connect(inject("coordisRedisUrl")));
    a = new Cache(clients[0] as RedisClient, options);
    b = new Cache(clients[1] as RedisClient, options);
    await Promise.all([a.ready(), b.ready()]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    for (const c of clients) c.disconnect();
  });

  it("set stores a class instance with fields as its fields, and a toJSON value as its JSON form", async () => {
    await a.set("user", new User(7, "Ada", JOINED));
    expect(await b.get("user")).toEqual({ id: 7, name: "Ada", joined: JOINED.toISOString() });
    await a.set("price", { amount: new Decimal("12.30"), list: [new Decimal("0.10")] });
    expect(await b.get("price")).toEqual({ amount: "12.30", list: ["0.10"] });
    // As JSON does, a property holding undefined, a function or a symbol is left out.
    await a.set("fields", { a: 1, none: undefined, f: () => 1, s: Symbol("s") });
    expect(await b.get("fields")).toEqual({ a: 1 });
  });

  it("getOrSet stores a loader's class instance and toJSON value the same way", async () => {
    expect(await a.getOrSet("loaded-user", () => new User(8, "Grace", JOINED))).toEqual({
      id: 8,
      name: "Grace",
      joined: JOINED.toISOString(),
    });
    expect(await b.get("loaded-user")).toEqual({ id: 8, name: "Grace", joined: JOINED.toISOString() });
    expect(await a.getOrSet("loaded-price", async () => new Decimal("5.00"))).toBe("5.00");
    expect(await b.get("loaded-price")).toBe("5.00");
  });

  it("still refuses a Map, a Set, NaN (also behind toJSON), naming where, and stores nothing", async () => {
    const refused: Array<[unknown, string]> = [
      [{ tags: new Set(["x"]) }, "value.tags is a Set, which JSON stores as {}"],
      [new Map([["a", 1]]), "value is a Map, which JSON stores as {}"],
      [{ avg: Number.NaN }, "value.avg is NaN, which JSON stores as null"],
      [{ total: { toJSON: () => Number.POSITIVE_INFINITY } }, "value.total is Infinity"],
    ];
    for (const [i, [value, where]] of refused.entries()) {
      const set = await a.set(`bad-${i}`, value).catch((e: unknown) => e);
      expect(set, where).toBeInstanceOf(InvalidArgumentError);
      expect(set).toMatchObject({ argument: "value" });
      expect((set as Error).message).toContain(where);
      const loaded = await a.getOrSet(`bad-loaded-${i}`, () => value).catch((e: unknown) => e);
      expect(loaded, where).toBeInstanceOf(InvalidArgumentError);
      expect(loaded).toMatchObject({ argument: "loader result" });
      expect((loaded as Error).message).toContain(where);
      expect(await b.get(`bad-${i}`)).toBeUndefined();
      expect(await b.get(`bad-loaded-${i}`)).toBeUndefined();
    }
  });
});
