import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import fastifyCookie from "@fastify/cookie";
import fastifySession from "@fastify/session";
import Fastify, { type LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisSessionStore, type SessionData } from "../src/index.js";
import { sessionApi } from "./helpers.js";

declare module "fastify" {
  interface Session {
    step?: number;
  }
}

const prefix = testPrefix("sess-races");

/** A Fastify app with @fastify/session on a RedisSessionStore under `storePrefix`; POST /start sets step 1. */
function stepApp(redis: RedisClient, storePrefix: string) {
  const app = Fastify();
  app.register(fastifyCookie);
  app.register(fastifySession, {
    secret: "a-secret-of-at-least-thirty-two-characters!",
    saveUninitialized: false,
    cookie: { secure: false, maxAge: 60_000 },
    store: new RedisSessionStore(redis, { prefix: storePrefix }),
  });
  app.post("/start", async (req) => {
    req.session.step = 1;
    return { step: 1 };
  });
  return app;
}

describe("RedisSessionStore: one session object saved more than once", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = connect(server.url);
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it("a session changed, saved, changed back to the data it was read with and saved again keeps the last save", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    await s.set("twice", { step: 1, cookie: { maxAge: 60_000 } });
    const session = (await s.get("twice")) as SessionData;
    session.step = 2;
    await s.set("twice", session);
    expect(await s.get("twice")).toMatchObject({ step: 2 });
    // Back to the data it was read with: this save is a change of what is stored now, not a renewal.
    session.step = 1;
    await s.set("twice", session);
    expect(await s.get("twice")).toMatchObject({ step: 1 });
  });

  it("a session read under one id and saved under another is written there (not only renewed)", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    await s.set("before-login", { user: "ada", cookie: { maxAge: 60_000 } });
    const session = (await s.get("before-login")) as SessionData;
    await s.set("after-login", session);
    expect(await s.get("after-login")).toMatchObject({ user: "ada" });
  });

  it("touch without a session object is an InvalidArgumentError and leaves the expiry alone", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    await s.set("short-lived", { user: "ada", cookie: { maxAge: 30_000 } });
    for (const bad of [undefined, null, "x"]) {
      const err = await s.touch("short-lived", bad as never).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err).toMatchObject({ argument: "session" });
    }
    // Not renewed for the default lifetime (1 day).
    expect(await redis.pttl(`${prefix}:sess:{short-lived}`)).toBeLessThanOrEqual(30_000);
  });

  it("@fastify/session: regenerate() keeping every field stores the session under its new id", async () => {
    const app = stepApp(redis, `${prefix}-regen`);
    // A new id (e.g. on a privilege change), the data kept: every field of the session.
    app.post("/rotate", async (req) => {
      await req.session.regenerate(Object.keys(req.session));
      return { step: req.session.step };
    });
    app.get("/step", async (req) => ({ step: req.session.step ?? null }));
    const sid = (res: LightMyRequestResponse) => res.cookies.find((c) => c.name === "sessionId")?.value as string;
    try {
      await app.ready();
      const first = sid(await app.inject({ method: "POST", url: "/start" }));
      const rotated = await app.inject({ method: "POST", url: "/rotate", cookies: { sessionId: first } });
      expect(rotated.json()).toEqual({ step: 1 });
      const second = sid(rotated);
      expect(second).toBeDefined();
      expect(second).not.toBe(first);
      expect((await app.inject({ method: "GET", url: "/step", cookies: { sessionId: second } })).json()).toEqual({
        step: 1,
      });
    } finally {
      await app.close();
    }
  });

  it("@fastify/session: a request that saves mid-way and then reverts its change ends with the reverted session", async () => {
    const app = stepApp(redis, `${prefix}-app`);
    // A multi-step flow: the next step is saved at once (another tab may read it), then rolled back.
    app.post("/try", async (req) => {
      req.session.step = 2;
      await req.session.save();
      req.session.step = 1;
      return { step: req.session.step };
    });
    app.get("/step", async (req) => ({ step: req.session.step ?? null }));
    try {
      await app.ready();
      const started: LightMyRequestResponse = await app.inject({ method: "POST", url: "/start" });
      const cookie = started.cookies.find((c) => c.name === "sessionId");
      expect(cookie).toBeDefined();
      const cookies = { sessionId: cookie?.value as string };
      expect((await app.inject({ method: "POST", url: "/try", cookies })).json()).toEqual({ step: 1 });
      expect((await app.inject({ method: "GET", url: "/step", cookies })).json()).toEqual({ step: 1 });
    } finally {
      await app.close();
    }
  });
});
