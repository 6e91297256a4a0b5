/** Bad input to @coordis/lock is rejected with InvalidArgumentError and sends nothing (see ./harness.ts). */
import {
  type Lease,
  MAX_LOCK_MS,
  MAX_PERMITS,
  Mutex,
  Redlock,
  runOncePerTick,
  Semaphore,
  tickHistory,
} from "@coordis/lock";
import { startRedis } from "@coordis/testing";
import fc from "fast-check";
import { describe, it } from "vitest";
import {
  bad,
  badNumbers,
  type Case,
  c,
  invalid,
  isInt,
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
  it("lock: Mutex, Semaphore, Redlock, leases, runOncePerTick, tickHistory", async () => {
    const o = { prefix };
    const mutex = new Mutex(redis, "bad-input", { ...o, ttlMs: 60_000 });
    const lease: Lease = await mutex.acquire({ waitMs: 1_000 });
    // Redlock refuses two nodes of one server: the two others are servers of their own (nothing may reach them
    // either, as nothing reaches this file's server, which is the first node).
    const extra = await Promise.all([startRedis(), startRedis()]);
    const nodes = [redis, ...extra.map((s) => s.client())];
    const ttl = bad.optional(bad.duration(1, MAX_LOCK_MS));
    const acquireOptions = (call: (opts: unknown) => unknown, at: string) => [
      c(`${at}(options)`, "options", bad.options(), (v) => call(v)),
      c(`${at}({ waitMs })`, "options.waitMs", bad.optional(bad.duration(0, MAX_LOCK_MS)), (v) => call({ waitMs: v })),
      c(`${at}({ signal })`, "options.signal", bad.optional(invalid((v) => v instanceof AbortSignal)), (v) =>
        call({ signal: v }),
      ),
      c(`${at}({ autoExtend })`, "options.autoExtend", bad.optional(bad.bool()), (v) => call({ autoExtend: v })),
    ];
    const cases: Case[] = [
      // Mutex
      c("Mutex(redis)", "redis", bad.client(), (v) => new Mutex(v, "n", o)),
      c("Mutex(name)", "name", bad.name(), (v) => new Mutex(redis, v, o)),
      c("Mutex(options)", "options", bad.options(), (v) => new Mutex(redis, "n", v)),
      c("Mutex({ ttlMs })", "options.ttlMs", ttl, (v) => new Mutex(redis, "n", { ...o, ttlMs: v })),
      c("Mutex({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) => new Mutex(redis, "n", { prefix: v })),
      c(
        "Mutex({ observer })",
        "options.observer",
        bad.optional(invalid(isObserver)),
        (v) => new Mutex(redis, "n", { ...o, observer: v }),
      ),
      ...acquireOptions((opts) => mutex.acquire(opts as never), "mutex.acquire"),
      c("mutex.using(fn)", "fn", bad.func(), (v) => mutex.using(v)),
      ...acquireOptions((opts) => mutex.using(async () => 1, opts as never), "mutex.using"),
      c("lease.extend(ttlMs)", "ttlMs", ttl, (v) => lease.extend(v)),
      // Semaphore
      c("Semaphore(redis)", "redis", bad.client(), (v) => new Semaphore(v, "n", { ...o, permits: 1 })),
      c("Semaphore(name)", "name", bad.name(), (v) => new Semaphore(redis, v, { ...o, permits: 1 })),
      c("Semaphore(options)", /^options(\.permits)?$/, invalid(isPlainObject), (v) => new Semaphore(redis, "n", v)),
      c(
        "Semaphore({ permits })",
        "options.permits",
        bad.int(1, MAX_PERMITS),
        (v) => new Semaphore(redis, "n", { ...o, permits: v }),
      ),
      c("Semaphore({ ttlMs })", "options.ttlMs", ttl, (v) => new Semaphore(redis, "n", { ...o, permits: 2, ttlMs: v })),
      c(
        "Semaphore({ prefix })",
        "options.prefix",
        bad.optional(bad.prefix()),
        (v) => new Semaphore(redis, "n", { permits: 2, prefix: v }),
      ),
      ...acquireOptions(
        (opts) => new Semaphore(redis, "s", { ...o, permits: 1 }).acquire(opts as never),
        "semaphore.acquire",
      ),
      // Redlock
      c(
        "Redlock(nodes)",
        /^nodes(\[\d+\])?$/,
        fc.oneof(
          invalid((v) => Array.isArray(v) && v.length > 0),
          fc.array(bad.client(), { minLength: 1, maxLength: 3 }),
          fc.constant([redis, redis]),
          fc.constant(Array.from({ length: 65 }, () => ({ evalsha() {} }))),
          fc.constant([redis, null]),
        ),
        (v) => new Redlock(v, "n", o),
      ),
      c("Redlock(name)", "name", bad.name(), (v) => new Redlock(nodes, v, o)),
      c("Redlock(options)", "options", bad.options(), (v) => new Redlock(nodes, "n", v)),
      c("Redlock({ ttlMs })", "options.ttlMs", ttl, (v) => new Redlock(nodes, "n", { ...o, ttlMs: v })),
      c(
        "Redlock({ driftFactor })",
        "options.driftFactor",
        bad.optional(bad.finite(0, 0.5)),
        (v) => new Redlock(nodes, "n", { ...o, driftFactor: v }),
      ),
      c(
        "Redlock({ nodeTimeoutMs })",
        "options.nodeTimeoutMs",
        bad.optional(bad.duration(1, 60_000)),
        (v) => new Redlock(nodes, "n", { ...o, nodeTimeoutMs: v }),
      ),
      c(
        "Redlock({ prefix })",
        "options.prefix",
        bad.optional(bad.prefix()),
        (v) => new Redlock(nodes, "n", { prefix: v }),
      ),
      ...acquireOptions((opts) => new Redlock(nodes, "r", o).acquire(opts as never), "redlock.acquire"),
      // runOncePerTick
      c("runOncePerTick(redis)", "redis", bad.client(), (v) => runOncePerTick(v, "job", 1, () => 1, o)),
      c("runOncePerTick(job)", "job", bad.name(), (v) => runOncePerTick(redis, v, 1, () => 1, o)),
      c(
        "runOncePerTick(tick)",
        "tick",
        invalid(
          (v) => isInt(v, 0, Number.MAX_SAFE_INTEGER) || (v instanceof Date && v.getTime() >= 0),
          badNumbers(0, Number.MAX_SAFE_INTEGER),
          fc.constantFrom(new Date(-1), new Date(Number.NaN), "1", "2024-01-01"),
        ),
        (v) => runOncePerTick(redis, "job", v, () => 1, o),
      ),
      c("runOncePerTick(fn)", "fn", bad.func(), (v) => runOncePerTick(redis, "job", 1, v, o)),
      c("runOncePerTick(options)", "options", bad.options(), (v) => runOncePerTick(redis, "job", 1, () => 1, v)),
      c("runOncePerTick({ ttlMs })", "options.ttlMs", ttl, (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, ttlMs: v }),
      ),
      c("runOncePerTick({ retryOnError })", "options.retryOnError", bad.optional(bad.bool()), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, retryOnError: v }),
      ),
      c(
        "runOncePerTick({ recordTtlMs })",
        "options.recordTtlMs",
        // Valid: 1 s to 365 days and at least ttlMs (30 s by default).
        bad.optional(invalid((v) => isInt(v, 30_000, MAX_DURATION), badNumbers(1_000, MAX_DURATION))),
        (v) => runOncePerTick(redis, "job", 1, () => 1, { ...o, recordTtlMs: v }),
      ),
      c("runOncePerTick({ historyLimit })", "options.historyLimit", bad.optional(bad.int(1, 10_000)), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, historyLimit: v }),
      ),
      c("runOncePerTick({ owner })", "options.owner", bad.optional(bad.str(256)), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, owner: v }),
      ),
      c("runOncePerTick({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { prefix: v }),
      ),
      c("runOncePerTick({ observer })", /^options\.observer/, bad.optional(invalid(isObserver)), (v) =>
        runOncePerTick(redis, "job", 1, () => 1, { ...o, observer: v }),
      ),
      c("tickHistory(redis)", "redis", bad.client(), (v) => tickHistory(v, "job", o)),
      c("tickHistory(job)", "job", bad.name(), (v) => tickHistory(redis, v, o)),
      c("tickHistory(options)", "options", bad.options(), (v) => tickHistory(redis, "job", v)),
      c("tickHistory({ limit })", "options.limit", bad.optional(bad.int(1, 10_000)), (v) =>
        tickHistory(redis, "job", { ...o, limit: v }),
      ),
      c("tickHistory({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) =>
        tickHistory(redis, "job", { prefix: v }),
      ),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await lease.release();
      await Promise.all(extra.map((s) => s.stop()));
    }
  });
});
