/** Bad input to @coordis/queue is rejected with InvalidArgumentError and sends nothing (see ./harness.ts). */
import { MAX_ADD_MANY, MAX_ATTEMPTS, MAX_PARTITIONS, MAX_PRIORITY, Queue, Worker } from "@coordis/queue";
import fc from "fast-check";
import { describe, it } from "vitest";
import {
  bad,
  type Case,
  c,
  cyclic,
  DAY_MS,
  invalid,
  isFunc,
  isObserver,
  isPlainObject,
  isStr,
  MAX_DURATION,
  prefix,
  redis,
  rejectedWithoutCommands,
  useServer,
} from "./harness.js";

useServer();

// biome-ignore lint/suspicious/noControlCharactersInRegex: ids and group names may not hold control characters
const isId = (v: unknown) => isStr(v, 256) && !/[\u0000-\u001f\u007f]/.test(v as string);
const isQueueName = (v: unknown) => isStr(v, 500) && !/[{}]/.test(v as string) && !/#\d+$/.test(v as string);
const badCodec = () =>
  bad.optional(
    fc.oneof(
      invalid(isPlainObject),
      fc.constantFrom({ encode: () => "" }, { decode: () => 1 }, { encode: 1, decode: () => 1 }),
    ),
  );

describe("bad input is rejected with InvalidArgumentError and sends nothing", () => {
  it("queue: Queue constructor, add, addMany, result, schedule, deadLetters; Worker constructor", async () => {
    const o = { prefix };
    const queue = new Queue(redis, "bad-input", { ...o, maxPayloadBytes: 1_024 });
    const make = (patch: Record<string, unknown>) => new Queue(redis, "n", { ...o, ...patch });
    const handler = async () => {};
    const worker = (patch: unknown) => new Worker(redis, "n", handler, { ...o, ...(patch as object) });
    const jobOptions = (call: (opts: Record<string, unknown>) => unknown, at: string, id: boolean): Case[] => [
      ...(id
        ? [
            c(
              `${at}.id`,
              `${at}.id`,
              bad.optional(invalid(isId, bad.str(256), fc.constantFrom("a\nb", "\u0000"))),
              (v) => call({ id: v }),
            ),
          ]
        : []),
      c(`${at}.delayMs`, `${at}.delayMs`, bad.optional(bad.duration(0, MAX_DURATION)), (v) => call({ delayMs: v })),
      c(`${at}.priority`, `${at}.priority`, bad.optional(bad.int(0, MAX_PRIORITY)), (v) => call({ priority: v })),
      c(`${at}.attempts`, `${at}.attempts`, bad.optional(bad.int(1, MAX_ATTEMPTS)), (v) => call({ attempts: v })),
      c(`${at}.group`, `${at}.group`, bad.optional(invalid(isId, bad.str(256), fc.constant("g\tx"))), (v) =>
        call({ group: v }),
      ),
      c(`${at}.resultTtlMs`, `${at}.resultTtlMs`, bad.optional(bad.duration(1, MAX_DURATION)), (v) =>
        call({ resultTtlMs: v }),
      ),
      c(
        `${at}.backoff`,
        new RegExp(`^${at.replace(".", "\\.")}\\.backoff(\\.[^.]+)?$`),
        bad.optional(
          fc.oneof(
            invalid(isPlainObject),
            fc.constantFrom(
              {},
              { type: "linear", delayMs: 1 },
              { type: "fixed" },
              { type: "fixed", delayMs: -1 },
              { type: "fixed", delayMs: 1, jitter: 2 },
              { type: "fixed", delayMs: 1, maxDelayMs: 0 },
              { type: "fixed", delayMs: 1, delay: 1 },
            ),
          ),
        ),
        (v) => call({ backoff: v }),
      ),
    ];
    const cases: Case[] = [
      c("Queue(redis)", "redis", bad.client(), (v) => new Queue(v, "n", o)),
      c(
        "Queue(name)",
        "name",
        invalid(isQueueName, bad.name(500), fc.constantFrom("a#1", "q#0", "x".repeat(501))),
        (v) => new Queue(redis, v, o),
      ),
      c("Queue(options)", "options", bad.options(), (v) => new Queue(redis, "n", v)),
      c("Queue({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) => make({ prefix: v })),
      c("Queue({ observer })", "options.observer", bad.optional(invalid(isObserver)), (v) => make({ observer: v })),
      c("Queue({ partitions })", "options.partitions", bad.optional(bad.int(1, MAX_PARTITIONS)), (v) =>
        make({ partitions: v }),
      ),
      c("Queue({ codec })", /^options\.codec(\.encode|\.decode)?$/, badCodec(), (v) => make({ codec: v })),
      c("Queue({ resultCodec })", /^options\.resultCodec(\.encode|\.decode)?$/, badCodec(), (v) =>
        make({ resultCodec: v }),
      ),
      c("Queue({ maxPayloadBytes })", "options.maxPayloadBytes", bad.optional(bad.int(1, 64 * 1024 * 1024)), (v) =>
        make({ maxPayloadBytes: v }),
      ),
      c(
        "Queue({ retention })",
        /^options\.retention(\.[^.]+)?$/,
        bad.optional(
          fc.oneof(
            invalid(isPlainObject),
            fc.constantFrom({ completed: -1 }, { dead: 0.5 }, { deadAgeMs: 0 }, { keep: 1 }),
          ),
        ),
        (v) => make({ retention: v }),
      ),
      c("Queue({ defaults })", "options.defaults", bad.optional(bad.options()), (v) => make({ defaults: v })),
      c("Queue({ defaults: { id } })", "options.defaults.id", fc.constant("x"), (v) => make({ defaults: { id: v } })),
      ...jobOptions((d) => make({ defaults: d }), "options.defaults", false),
      c("add(opts)", "opts", bad.options(), (v) => queue.add(1, v)),
      ...jobOptions((opts) => queue.add(1, opts), "opts", true),
      c(
        "add(data)",
        "data",
        fc.constantFrom(10n, Symbol("d"), () => 1, cyclic, "x".repeat(1_100), { big: "é".repeat(600) }),
        (v) => queue.add(v),
      ),
      c(
        "addMany(items)",
        /^items(\[\d+\](\.[^.]*)?)?$/,
        invalid(
          (v) => Array.isArray(v) && v.every(isPlainObject),
          fc.constant(Array.from({ length: MAX_ADD_MANY + 1 }, (_, i) => ({ data: i }))),
          // biome-ignore lint/suspicious/noSparseArray: a hole is an item too
          fc.constant([{ data: 1 }, , { data: 2 }]),
        ),
        (v) => queue.addMany(v),
      ),
      c("addMany(items[i].opts.id)", "items[1].opts.id", bad.optional(invalid(isId, bad.str(256))), (v) =>
        queue.addMany([{ data: 1 }, { data: 2, opts: { id: v } }]),
      ),
      c(
        "get(id)",
        "id",
        invalid((v) => isStr(v, 1024), bad.str(1024)),
        (v) => queue.get(v),
      ),
      c(
        "cancel(id)",
        "id",
        invalid((v) => isStr(v, 1024), bad.str(1024)),
        (v) => queue.cancel(v),
      ),
      c(
        "retryDead(id)",
        "id",
        invalid((v) => isStr(v, 1024), bad.str(1024)),
        (v) => queue.retryDead(v),
      ),
      c(
        "result(id)",
        "id",
        invalid((v) => isStr(v, 1024), bad.str(1024)),
        (v) => queue.result(v),
      ),
      c("result(options)", /^options(\.[^.]+)?$/, bad.options(), (v) => queue.result("x", v)),
      c("result({ timeoutMs })", "options.timeoutMs", bad.optional(bad.duration(1, 2 ** 31 - 1)), (v) =>
        queue.result("x", { timeoutMs: v }),
      ),
      c(
        "schedule(name)",
        "name",
        invalid((v) => isId(v) && isStr(v, 229) && !/[{}]/.test(v as string), bad.name(229)),
        (v) => queue.schedule(v, { everyMs: 1_000 }, 1),
      ),
      c(
        "schedule(spec)",
        /^spec(\.[^.]+)?$/,
        fc.oneof(
          invalid(isPlainObject),
          fc.constantFrom(
            {},
            { everyMs: 999 },
            { everyMs: 1.5e3 + 0.5 },
            { cron: "* * *" },
            { cron: "* * * * * * *" },
            { cron: "61 * * * *" },
            { cron: "* * * * *", tz: "Mars/Base" },
            { cron: "* * * * *", every: 1 },
          ),
        ),
        (v) => queue.schedule("s", v, 1),
      ),
      c("schedule(opts.delayMs)", "opts.delayMs", fc.constant(10), (v) =>
        queue.schedule("s", { everyMs: 1_000 }, 1, { delayMs: v } as never),
      ),
      c("schedule(opts.id)", "opts.id", fc.constant("x"), (v) =>
        queue.schedule("s", { everyMs: 1_000 }, 1, { id: v } as never),
      ),
      c("unschedule(name)", "name", bad.name(), (v) => queue.unschedule(v)),
      c("deadLetters(options)", "options", bad.options(), (v) => queue.deadLetters(v)),
      c("deadLetters({ limit })", "options.limit", bad.optional(bad.int(1, 1_000)), (v) =>
        queue.deadLetters({ limit: v }),
      ),
      c(
        "deadLetters({ cursor })",
        "options.cursor",
        bad.optional(fc.constantFrom("", "0", "1:0", "0:x", ":1", "0:1", "0:1:", "0:x:a", "1::", "1:1:a", "-1:0", 5)),
        (v) => queue.deadLetters({ cursor: v }),
      ),
      c("Worker(redis)", "redis", bad.client(), (v) => new Worker(v, "n", handler, o)),
      c(
        "Worker(name)",
        "name",
        invalid(isQueueName, bad.name(500), fc.constant("a#1")),
        (v) => new Worker(redis, v, handler, o),
      ),
      c("Worker(handler)", "handler", invalid(isFunc), (v) => new Worker(redis, "n", v, o)),
      c("Worker(options)", "options", bad.options(), (v) => new Worker(redis, "n", handler, v)),
      c("Worker({ concurrency })", "options.concurrency", bad.optional(bad.int(1, 10_000)), (v) =>
        worker({ concurrency: v }),
      ),
      c("Worker({ leaseMs })", "options.leaseMs", bad.optional(bad.duration(1_000, DAY_MS)), (v) =>
        worker({ leaseMs: v }),
      ),
      c("Worker({ blockMs })", "options.blockMs", bad.optional(bad.duration(10, 60_000)), (v) =>
        worker({ blockMs: v }),
      ),
      c("Worker({ schedules })", "options.schedules", bad.optional(bad.bool()), (v) => worker({ schedules: v })),
      c(
        "Worker({ groups })",
        /^options\.groups(\.[^.]+|\.rateLimit\[\d+\](\.[^.]+)?)?$/,
        bad.optional(
          fc.oneof(
            invalid(isPlainObject),
            fc.constantFrom(
              { concurrency: 0 },
              { concurrency: 1.5 },
              { limit: 1 },
              { rateLimit: {} },
              { rateLimit: [{ limit: 0, windowMs: 1_000 }] },
              { rateLimit: [{ name: "a;b", limit: 1, windowMs: 1_000 }] },
              { rateLimit: [{ name: "a=b", limit: 1, windowMs: 1_000 }] },
              { rateLimit: [{ limit: 1, windowMs: 1_000, algorithm: "leaky" }] },
            ),
          ),
        ),
        (v) => worker({ groups: v }),
      ),
    ];
    await rejectedWithoutCommands(cases);
    await queue.close();
  });
});
