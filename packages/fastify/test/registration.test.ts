import { InvalidArgumentError } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { type FaultProxy, recordObserver, startProxy, testPrefix, tryWaitUntil, waitUntil } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-registration");

/** What registering the plugin rejects with (undefined when it succeeded). */
async function registerError(register: (app: ReturnType<typeof Fastify>) => Promise<unknown>): Promise<unknown> {
  const app = Fastify();
  try {
    await register(app);
    await app.ready();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await app.close().catch(() => {});
  }
}

describe("registration of the plugin", () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    proxy = await startProxy({ target: url });
  });
  afterAll(async () => {
    await proxy.close();
  });

  it("a registration that fails after the plugin connected closes its connection", async () => {
    const before = proxy.stats().accepted;
    const err = await registerError(async (app) => {
      app.get("/metrics", async () => "mine"); // the plugin's /metrics route clashes with it
      await app.register(coordis, { url: proxy.url, prefix, metrics: true });
    });
    expect(String((err as { code?: string })?.code)).toBe("FST_ERR_DUPLICATED_ROUTE");
    expect(String((err as Error).message)).toContain("metrics: { path: false }");
    // The connection may have been closed before it was even made; once made, it must close.
    if (await tryWaitUntil(() => proxy.stats().accepted > before, 2_000)) {
      await waitUntil("the plugin's connection closed", () => proxy.stats().connections === 0, 5_000);
    }
    // An unsafe client made from connectOptions is refused, and closed too.
    const unsafe = await registerError((app) =>
      app.register(coordis, {
        url: proxy.url,
        prefix,
        connectOptions: { redisOptions: { autoResendUnfulfilledCommands: true } },
      }),
    );
    expect(unsafe).toBeInstanceOf(InvalidArgumentError);
    expect((unsafe as InvalidArgumentError).argument).toBe("options.connectOptions");
    expect(String(unsafe)).toMatch(/autoResendUnfulfilledCommands/);
    await waitUntil("the refused connection closed", () => proxy.stats().connections === 0, 5_000);
  });

  it("bad metrics and connectOptions values are InvalidArgumentErrors naming them, before anything is opened", async () => {
    const accepted = proxy.stats().accepted;
    const cases: Array<[string, Record<string, unknown>]> = [
      ["options.metrics.path", { metrics: { path: "metrics" } }],
      ["options.metrics.registry", { metrics: { registry: {} } }],
      ["options.metrics.registry", { metrics: { registry: "default" } }],
      ["options.connectOptions.bogus", { connectOptions: { bogus: 1 } }],
      ["options.connectOptions.commandTimeoutMs", { connectOptions: { commandTimeoutMs: -1 } }],
    ];
    for (const [argument, options] of cases) {
      const err = await registerError((app) => app.register(coordis, { url: proxy.url, prefix, ...options }));
      expect(err, argument).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(argument);
    }
    expect(proxy.stats().accepted).toBe(accepted);
  });

  it("an observer in connectOptions hears the connection's events beside the plugin's observer", async () => {
    const mine = recordObserver();
    const theirs = recordObserver();
    const app = Fastify();
    try {
      // Nothing listens there: the connection reports its errors.
      await app.register(coordis, {
        url: "redis://127.0.0.1:1",
        prefix,
        observer: mine,
        connectOptions: { observer: theirs, connectTimeoutMs: 200 },
      });
      await app.ready();
      await waitUntil(
        "both observers heard a connection error",
        () =>
          mine.events.some((e) => e.type === "connection-error") &&
          theirs.events.some((e) => e.type === "connection-error"),
        10_000,
      );
    } finally {
      await app.close();
    }
  });

  it("static rule sets do not count against the cap on rules functions' distinct rule sets", async () => {
    const app = Fastify();
    const dynamic = [{ name: "d", limit: 5, windowMs: 60_000 }];
    try {
      await app.register(coordis, { url, prefix, rateLimit: { key: () => "k" } });
      for (let i = 0; i < 257; i++) {
        app.get(
          `/static-${i}`,
          { config: { coordis: { rateLimit: { rules: [{ name: `s${i}`, limit: 5 + i, windowMs: 60_000 }] } } } },
          async () => "ok",
        );
      }
      app.get("/dynamic", { config: { coordis: { rateLimit: { rules: () => dynamic } } } }, async () => "ok");
      await app.ready();
      expect((await app.inject({ method: "GET", url: "/dynamic" })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it("errorResponseBuilder: an object or a promise of one is the body; anything else is a 500 naming the route", async () => {
    const app = Fastify();
    const rules = [{ name: "one", limit: 1, windowMs: 60_000 }];
    const route = (path: string, errorResponseBuilder: (...args: never[]) => unknown) =>
      app.get(
        path,
        { config: { coordis: { rateLimit: { rules, errorResponseBuilder: errorResponseBuilder as () => object } } } },
        async () => "ok",
      );
    try {
      await app.register(coordis, { url, prefix: `${prefix}-erb`, rateLimit: { key: () => "k" } });
      route("/object", () => ({ message: "slow down" }));
      route("/async", async () => ({ message: "later" }));
      route("/string", () => "slow down");
      route("/nothing", () => undefined);
      await app.ready();
      const second = async (path: string) => {
        expect((await app.inject({ method: "GET", url: path })).statusCode).toBe(200);
        return app.inject({ method: "GET", url: path });
      };
      const object = await second("/object");
      expect([object.statusCode, object.json()]).toEqual([429, { message: "slow down" }]);
      const later = await second("/async");
      expect([later.statusCode, later.json()]).toEqual([429, { message: "later" }]);
      for (const path of ["/string", "/nothing"]) {
        const res = await second(path);
        expect(res.statusCode, path).toBe(500);
        expect(res.body, path).toContain(`GET ${path}`);
      }
    } finally {
      await app.close();
    }
  });
});
