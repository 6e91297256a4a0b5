import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache, type CacheCodec, RedisSessionStore, type SessionData } from "../src/index.js";
import { sessionApi } from "./helpers.js";

const prefix = testPrefix();

/**
 * Packs the UTF-8 bytes of a value's JSON two per UTF-16 code unit, as compressing codecs do (lz-string's
 * `compress`): the text can hold lone surrogates, which no Redis client can send as they are (UTF-8 has no form for
 * them: each becomes U+FFFD).
 */
function packed(json: string): string {
  const bytes = Buffer.from(json, "utf8");
  let out = String.fromCharCode(bytes.length);
  for (let i = 0; i < bytes.length; i += 2) out += String.fromCharCode(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  return out;
}
function unpacked(text: string): string {
  const n = text.charCodeAt(0);
  const bytes = Buffer.alloc(n + 1);
  for (let i = 1; i < text.length; i++) bytes.writeUInt16BE(text.charCodeAt(i), (i - 1) * 2);
  return bytes.subarray(0, n).toString("utf8");
}
const packingCodec: CacheCodec = {
  encode: (v) => packed(JSON.stringify(v)),
  decode: (text) => JSON.parse(unpacked(text)) as unknown,
};
/** A value whose packed form holds a lone high surrogate (in its JSON, byte 0xD8 starts a pair). */
const ARABIC = "a\u0600";

describe("encoded text that Redis cannot store as it is (lone UTF-16 surrogates)", () => {
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  const client = () => {
    const c = connect(inject("coordisRedisUrl"));
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    for (const c of clients) c.disconnect();
  });

  it("Cache: set and a loader's result are refused with InvalidArgumentError, nothing is stored", async () => {
    expect(packed(JSON.stringify(ARABIC)).isWellFormed()).toBe(false);
    // The codec itself round-trips in memory: only the way to Redis alters its text.
    expect(packingCodec.decode(packingCodec.encode(ARABIC))).toBe(ARABIC);
    const options = { namespace: "packed", prefix, ttlMs: 60_000, codec: packingCodec, checkEvictionPolicy: false };
    const a = new Cache(client(), options);
    const b = new Cache(client(), options);
    caches.push(a, b);
    await Promise.all([a.ready(), b.ready()]);
    await a.set("plain", "abc"); // well-formed text passes
    expect(await b.get("plain")).toBe("abc");
    const refused = await a.set("k", ARABIC).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidArgumentError);
    expect(refused).toMatchObject({ argument: "value" });
    // Nothing reached Redis: another replica does not read an altered value.
    expect(await b.get("k")).toBeUndefined();
    const failed = await a.getOrSet("loaded", () => ARABIC).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(InvalidArgumentError);
    expect(failed).toMatchObject({ argument: "loader result" });
    expect(await b.getOrSet("loaded", () => "ok")).toBe("ok");
  });

  it("RedisSessionStore: a serializer writing such text is refused with InvalidArgumentError, the stored session is kept", async () => {
    const redis = client();
    const serializer = {
      stringify: (s: object) => packed(JSON.stringify(s)),
      parse: (text: string) => JSON.parse(unpacked(text)) as unknown,
    };
    const s = sessionApi(new RedisSessionStore(redis, { prefix, serializer }));
    await s.set("sid", { user: "ada", cookie: { maxAge: 60_000 } });
    const refused = await s.set("sid", { user: ARABIC, cookie: { maxAge: 60_000 } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidArgumentError);
    expect(refused).toMatchObject({ argument: "session" });
    expect(((await s.get("sid")) as SessionData).user).toBe("ada");
  });
});
