/** Bad input to @coordis/cache is rejected with InvalidArgumentError and sends nothing (see ./harness.ts). */
import { Cache } from "@coordis/cache";
import fc from "fast-check";
import { describe, it } from "vitest";
import {
  bad,
  badStrings,
  type Case,
  c,
  cyclic,
  invalid,
  isName,
  isObserver,
  isPlainObject,
  MAX_DURATION,
  prefix,
  redis,
  rejectedWithoutCommands,
  useServer,
} from "./harness.js";

useServer();

describe("bad input is rejected with InvalidArgumentError and sends nothing", () => {
  it("cache: constructor, getOrSet, get, set, delete, invalidateTag", async () => {
    const o = { prefix, namespace: "bad-input", ttlMs: 60_000 };
    // No bus and no eviction-policy check: this instance sends nothing at start, so only the calls below count.
    const cache = new Cache(redis, { ...o, bus: false, checkEvictionPolicy: false });
    await cache.ready();
    const make = (patch: Record<string, unknown>) => new Cache(redis, { ...o, bus: false, ...patch });
    const loader = async () => 1;
    const tag = invalid((v) => isName(v, 256), badStrings(256));
    const entryOptions = (call: (opts: unknown) => unknown, at: string): Case[] => [
      c(`${at}(options)`, "options", bad.options(), (v) => call(v)),
      c(`${at}({ ttlMs })`, "options.ttlMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) => call({ ttlMs: v })),
      c(`${at}({ staleMs })`, "options.staleMs", bad.optional(bad.duration(0, MAX_DURATION)), (v) =>
        call({ staleMs: v }),
      ),
      c(
        `${at}({ tags })`,
        /^options\.tags(\[\d+\])?$/,
        bad.optional(
          fc.oneof(
            invalid((v) => Array.isArray(v)),
            fc.array(tag, { minLength: 1, maxLength: 3 }),
            fc.constant(Array.from({ length: 33 }, (_, i) => `t${i}`)),
          ),
        ),
        (v) => call({ tags: v }),
      ),
    ];
    const cases: Case[] = [
      c("Cache(redis)", "redis", bad.client(), (v) => new Cache(v, o)),
      c("Cache(options)", /^options(\.namespace)?$/, invalid(isPlainObject), (v) => new Cache(redis, v)),
      c(
        "Cache({ namespace })",
        "options.namespace",
        invalid((v) => typeof v === "string" && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v), badStrings(64)),
        (v) => make({ namespace: v }),
      ),
      c("Cache({ ttlMs })", "options.ttlMs", bad.duration(1, MAX_DURATION), (v) => make({ ttlMs: v })),
      c("Cache({ staleMs })", "options.staleMs", bad.optional(bad.duration(0, MAX_DURATION)), (v) =>
        make({ staleMs: v }),
      ),
      c("Cache({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) => make({ prefix: v })),
      c(
        "Cache({ codec })",
        /^options\.codec(\.encode|\.decode)?$/,
        bad.optional(fc.oneof(invalid(isPlainObject), fc.constantFrom({ encode: () => "" }, { decode: () => 1 }))),
        (v) => make({ codec: v }),
      ),
      c("Cache({ observer })", "options.observer", bad.optional(invalid(isObserver)), (v) => make({ observer: v })),
      c("Cache({ lock })", "options.lock", bad.options(), (v) => make({ lock: v })),
      c("Cache({ lock: { ttlMs } })", "options.lock.ttlMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) =>
        make({ lock: { ttlMs: v } }),
      ),
      c("Cache({ lock: { waitMs } })", "options.lock.waitMs", bad.optional(bad.duration(0, MAX_DURATION)), (v) =>
        make({ lock: { waitMs: v } }),
      ),
      c("Cache({ breaker })", "options.breaker", bad.options(), (v) => make({ breaker: v })),
      c("Cache({ breaker: { failures } })", "options.breaker.failures", bad.optional(bad.int(1, 1_000)), (v) =>
        make({ breaker: { failures: v } }),
      ),
      c(
        "Cache({ breaker: { cooldownMs } })",
        "options.breaker.cooldownMs",
        bad.optional(bad.duration(1, MAX_DURATION)),
        (v) => make({ breaker: { cooldownMs: v } }),
      ),
      c(
        "Cache({ l1 })",
        "options.l1",
        bad.options().filter((v) => v !== false),
        (v) => make({ l1: v }),
      ),
      c("Cache({ l1: { maxEntries } })", "options.l1.maxEntries", bad.optional(bad.int(1, 10_000_000)), (v) =>
        make({ l1: { maxEntries: v } }),
      ),
      c("Cache({ l1: { maxBytes } })", "options.l1.maxBytes", bad.optional(bad.int(1, Number.MAX_SAFE_INTEGER)), (v) =>
        make({ l1: { maxBytes: v } }),
      ),
      c("Cache({ l1: { ttlMs } })", "options.l1.ttlMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) =>
        make({ l1: { ttlMs: v } }),
      ),
      c("Cache({ bus })", "options.bus", bad.optional(bad.bool()), (v) => new Cache(redis, { ...o, bus: v })),
      c("Cache({ checkEvictionPolicy })", "options.checkEvictionPolicy", bad.optional(bad.bool()), (v) =>
        make({ checkEvictionPolicy: v }),
      ),
      c("getOrSet(key)", "key", bad.name(), (v) => cache.getOrSet(v, loader)),
      c("getOrSet(loader)", "loader", bad.func(), (v) => cache.getOrSet("k", v)),
      ...entryOptions((opts) => cache.getOrSet("k", loader, opts as never), "getOrSet"),
      c("get(key)", "key", bad.name(), (v) => cache.get(v)),
      c("set(key)", "key", bad.name(), (v) => cache.set(v, 1)),
      c(
        "set(value)",
        "value",
        fc.constantFrom<unknown>(undefined, () => 1, Symbol("v"), 10n, cyclic, { n: 1n }),
        (v) => cache.set("k", v),
      ),
      ...entryOptions((opts) => cache.set("k", 1, opts as never), "set"),
      c("delete(key)", "key", bad.name(), (v) => cache.delete(v)),
      c("invalidateTag(tag)", "tag", tag, (v) => cache.invalidateTag(v)),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await cache.close();
    }
  });
});
