import { connect, type RedisClient } from "@coordis/core";
import { runOncePerTick, tickHistory } from "@coordis/lock";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

// fn may throw anything: runOncePerTick must rethrow that very value and record the tick failed, whatever it is.
describe("runOncePerTick when fn throws a value without a string form", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it.each([
    ["a null-prototype object", () => Object.create(null) as object],
    [
      "an Error whose message getter throws",
      () => {
        const err = new Error("x");
        Object.defineProperty(err, "message", {
          get() {
            throw new Error("no message");
          },
        });
        return err;
      },
    ],
  ] as const)("%s: rethrown unchanged, the tick recorded failed", async (kind, make) => {
    const job = `thrown-${kind.replaceAll(" ", "-")}`;
    const thrown = make();
    const err = await runOncePerTick(
      redis,
      job,
      1,
      () => {
        throw thrown;
      },
      { prefix },
    ).catch((e: unknown) => e);
    expect(err).toBe(thrown);
    // Recorded failed: not left running (then abandoned), and in the history.
    const again = await runOncePerTick(redis, job, 1, () => "again", { prefix });
    expect(again).toMatchObject({ ran: false, state: "failed" });
    const history = await tickHistory(redis, job, { prefix });
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ tick: 1, ok: false });
    expect(history[0]?.error).toBe("an object without a string form");
  });
});
