/** Bad input to @coordis/pubsub is rejected with InvalidArgumentError and sends nothing (see ./harness.ts). */
import { PubSub } from "@coordis/pubsub";
import fc from "fast-check";
import { describe, it } from "vitest";
import {
  bad,
  type Case,
  c,
  cyclic,
  invalid,
  isFunc,
  isObserver,
  isPlainObject,
  prefix,
  redis,
  rejectedWithoutCommands,
  useServer,
} from "./harness.js";

useServer();

describe("bad input is rejected with InvalidArgumentError and sends nothing", () => {
  it("pubsub: constructor, publish, subscribe, psubscribe, redisChannel", async () => {
    const o = { prefix };
    const pubsub = new PubSub(redis, { ...o, maxMessageBytes: 1_024 });
    const handler = () => {};
    const cases: Case[] = [
      c(
        "PubSub(redis)",
        "redis",
        invalid((v) => isPlainObject(v) && isFunc((v as { duplicate?: unknown }).duplicate)),
        (v) => new PubSub(v, o),
      ),
      c("PubSub(options)", "options", bad.options(), (v) => new PubSub(redis, v)),
      c("PubSub({ prefix })", "options.prefix", bad.optional(bad.prefix()), (v) => new PubSub(redis, { prefix: v })),
      c(
        "PubSub({ codec })",
        /^options\.codec(\.encode|\.decode)?$/,
        bad.optional(
          fc.oneof(
            invalid(isPlainObject),
            fc.constantFrom({ encode: () => "" }, { decode: () => 1 }, { encode: 1, decode: () => 1 }),
          ),
        ),
        (v) => new PubSub(redis, { ...o, codec: v }),
      ),
      c(
        "PubSub({ queueLimit })",
        "options.queueLimit",
        bad.optional(bad.int(1, 1_000_000)),
        (v) => new PubSub(redis, { ...o, queueLimit: v }),
      ),
      c(
        "PubSub({ maxMessageBytes })",
        "options.maxMessageBytes",
        bad.optional(bad.int(1, 512 * 1024 * 1024)),
        (v) => new PubSub(redis, { ...o, maxMessageBytes: v }),
      ),
      c(
        "PubSub({ observer })",
        /^options\.observer/,
        bad.optional(invalid(isObserver)),
        (v) => new PubSub(redis, { ...o, observer: v }),
      ),
      c(
        "PubSub({ sharded })",
        "options.sharded",
        bad.optional(bad.bool()),
        (v) => new PubSub(redis, { ...o, sharded: v }),
      ),
      c("publish(channel)", "channel", bad.channel(), (v) => pubsub.publish(v, "m")),
      c(
        "publish(message)",
        "message",
        fc.oneof(
          fc.constantFrom<unknown>(undefined, () => 1, Symbol("m"), 10n, cyclic, { n: 1n }),
          fc.string({ minLength: 1_100, maxLength: 1_200 }),
          fc.constant("é".repeat(600)),
        ),
        (v) => pubsub.publish("ch", v),
      ),
      c("subscribe(channel)", "channel", bad.channelOrPattern(), (v) => pubsub.subscribe(v, handler)),
      c("subscribe(handler)", "handler", bad.func(), (v) => pubsub.subscribe("ch", v)),
      c("psubscribe(pattern)", "pattern", bad.pattern(), (v) => pubsub.psubscribe(v, handler)),
      c("psubscribe(handler)", "handler", bad.func(), (v) => pubsub.psubscribe("ch.*", v)),
      c("redisChannel(channel)", "channel", bad.channel(), (v) => pubsub.redisChannel(v)),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await pubsub.close();
    }
  });
});
