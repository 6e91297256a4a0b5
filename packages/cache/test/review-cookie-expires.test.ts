import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisSessionStore } from "../src/index.js";
import { sessionApi } from "./helpers.js";

const prefix = testPrefix();

// Older express-session apps mark a browser-session cookie with `expires: false` (stored sessions keep it); connect-redis
// reads any falsy `expires` as "no expiry given" and uses maxAge or its default TTL. Read as a date it is 1970: every
// save deleted the session.
describe("RedisSessionStore and a cookie without an expiry date", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = connect(server.url);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it.each([
    ["expires: false", { expires: false }],
    ["expires: false with maxAge", { expires: false, maxAge: 60_000 }],
    ["expires: 0", { expires: 0 }],
    ["expires: ''", { expires: "" }],
  ])("%s: the session is kept (maxAge, else the default TTL), as connect-redis does", async (kind, cookie) => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    const sid = `sid-${kind.length}`;
    const session = { user: "ada", cookie };
    await s.set(sid, session as never);
    expect(await s.get(sid)).toEqual(session);
    const ttl = await redis.pttl(`${prefix}:sess:{${sid}}`);
    if ("maxAge" in cookie) expect(ttl).toBeLessThanOrEqual(60_000);
    else expect(ttl).toBeGreaterThan(23 * 3_600_000); // the default, 1 day
    expect(ttl).toBeGreaterThan(50_000);
  });
});
