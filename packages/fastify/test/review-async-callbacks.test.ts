import { Writable } from "node:stream";
import { connect, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix, waitUntil } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-async-callbacks");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

// Rejections nobody handled: under Node's default (`--unhandled-rejections=throw`) each one ends the process.
let unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => {
  unhandled.push(reason);
};
beforeEach(() => {
  unhandled = [];
  process.on("unhandledRejection", onUnhandled);
});
afterEach(() => {
  process.off("unhandledRejection", onUnhandled);
});

let n = 0;
/** An app whose error log lines are collected in `lines`. */
async function makeApp(settings: Record<string, unknown>) {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const app = Fastify({ logger: { level: "error", stream } });
  await app.register(coordis, { redis: shared, prefix: `${prefix}-${n++}`, rateLimit: settings });
  app.get(
    "/a",
    { config: { coordis: { rateLimit: { rules: [{ name: "r", limit: 1, windowMs: 60_000 }] } } } },
    () => "ok",
  );
  await app.ready();
  return { app, lines };
}

describe("async callbacks of the user's (a promise returned)", () => {
  it("onExceeding / onExceeded that reject: the requests are answered, the rejection is logged, never unhandled", async () => {
    const { app, lines } = await makeApp({
      onExceeding: async () => {
        throw new Error("onExceeding failed");
      },
      onExceeded: async () => {
        throw new Error("onExceeded failed");
      },
    });
    try {
      expect((await app.inject("/a")).statusCode).toBe(200);
      expect((await app.inject("/a")).statusCode).toBe(429);
      const logged = (what: string) => lines.some((l) => l.includes(what) && l.includes("GET /a"));
      await waitUntil(
        "both rejections logged or left unhandled",
        () => (logged("onExceeding") && logged("onExceeded")) || unhandled.length >= 2,
      );
      expect(unhandled).toEqual([]);
      expect(logged("onExceeding failed")).toBe(true);
      expect(logged("onExceeded failed")).toBe(true);
    } finally {
      await app.close();
    }
  });

  it("a cost function returning a promise: 500 naming the route, and its rejection is never unhandled", async () => {
    const { app } = await makeApp({ cost: () => Promise.reject(new Error("no cost")) });
    try {
      const res = await app.inject("/a");
      expect(res.statusCode).toBe(500);
      expect(res.json().detail).toContain("returned a promise");
      // Node reports an unhandled rejection once the microtasks of the turn it happened in have run.
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      await app.close();
    }
  });
});
