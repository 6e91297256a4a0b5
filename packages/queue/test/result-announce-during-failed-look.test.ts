import { RedisUnavailableError } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queueKeys } from "../src/keys.js";
import { ResultWaiters } from "../src/results.js";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue-result-announce");

describe("Queue.result(): an announcement that arrives while a look at the job fails", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("gets a look of its own at once, not at the next periodic look", async () => {
    const redis = server.client();
    const admin = server.adminClient();
    const keys = queueKeys(prefix, "announce", 1);
    const channel = (keys[0] as (typeof keys)[number]).channel;
    const waiters = new ResultWaiters(redis, keys, "announce", undefined);
    // Look 1 (at the call): not final yet. Look 2 (the first announcement): held until the test fails it with a
    // Redis blip, after a second announcement came meanwhile. Look 3: final.
    const held = gate<void>();
    const second = gate<void>();
    let looks = 0;
    const check = async (): Promise<boolean> => {
      looks++;
      if (looks === 2) {
        second.open();
        await held.promise;
        throw new RedisUnavailableError("announce", new Error("connection lost"));
      }
      return looks >= 3;
    };
    let rejected: unknown;
    // A limit well below the periodic look (RESULT_RECHECK_MS, 5 s): only an announcement can settle the wait in time.
    const waiting = waiters.wait("job-1", 0, 3_000, check, (err) => {
      rejected = err;
    });
    // A second waiter, announced in the same message right after job-1: once its look ran, the announcement of job-1
    // reached job-1's waiter (both are handled in one synchronous pass over the message's lines).
    let probeLooks = 0;
    const probe = waiters.wait(
      "probe",
      0,
      5_000,
      async () => ++probeLooks >= 2,
      () => {},
    );
    try {
      await Promise.all([waiting, probe]);
      expect(looks).toBe(1);
      await admin.call("SPUBLISH", channel, "c job-1");
      await second.promise;
      await admin.call("SPUBLISH", channel, "c job-1\nc probe");
      await waitUntil("the second announcement handled", () => probeLooks >= 2, 5_000);
      expect(looks).toBe(2);
      held.open();
      await waitUntil("a third look (or the wait timed out)", () => looks >= 3 || rejected !== undefined, 5_000);
      expect(rejected).toBeUndefined();
      expect(looks).toBe(3);
    } finally {
      await waiters.close();
    }
  });
});
