import type { CoordisEvent, RedisClient } from "@coordis/core";
import { Queue, queueScripts, Worker } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue-result-blip");

describe("Queue.result() while Redis blips", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    if (server.paused) server.resume();
    await server.stop();
  });

  it("a look at the job that fails mid-wait (Redis unreachable) is reported and the wait goes on to the result", async () => {
    const redis: RedisClient = server.client({ commandTimeoutMs: 500 });
    const admin: RedisClient = server.adminClient();
    // Counts the answered reads of the get script (what result() looks at the job with).
    let gets = 0;
    type Send = (script: string, ...rest: unknown[]) => Promise<unknown>;
    const raw = redis as unknown as { evalsha: Send; eval: Send };
    for (const [method, get] of [
      ["evalsha", queueScripts.get.sha1],
      ["eval", queueScripts.get.source],
    ] as const) {
      const send = raw[method].bind(raw);
      raw[method] = (script, ...rest) => {
        const reply = send(script, ...rest);
        if (script === get)
          void reply.then(
            () => gets++,
            () => {},
          );
        return reply;
      };
    }
    const events: CoordisEvent[] = [];
    const q = new Queue<string, string>(redis, "blip", { prefix, observer: { onEvent: (e) => void events.push(e) } });
    const release = gate();
    const started = gate();
    const worker = new Worker<string, string>(
      redis,
      "blip",
      async () => {
        started.open();
        await release.promise;
        return "done";
      },
      { prefix, schedules: false },
    );
    try {
      const { id } = await q.add("a");
      await started.promise;
      let settled: unknown;
      const result = q.result(id, { timeoutMs: 30_000 }).then(
        (value) => {
          settled = { value };
          return value;
        },
        (error: unknown) => {
          settled = { error };
          throw error;
        },
      );
      result.catch(() => {});
      await waitUntil("result() looked at the job once", () => gets >= 1, 5_000);
      expect(settled).toBeUndefined();
      // Scripts stop being answered (longer than the client's 500 ms command timeout), and the result subscription
      // reconnects: result() looks at the job again, and that read fails.
      await admin.call("CLIENT", "PAUSE", "20000", "WRITE");
      const list = String(await admin.call("CLIENT", "LIST"));
      const subscriber = list.split("\n").find((line) => / ssub=1 /.test(line));
      expect(subscriber).toBeDefined();
      await admin.call("CLIENT", "KILL", "ID", (/id=(\d+)/.exec(subscriber as string) as RegExpExecArray)[1] as string);
      await waitUntil(
        "the failed look is reported (or the wait settled)",
        () => settled !== undefined || events.some((e) => e.type === "result-error"),
        10_000,
      );
      await admin.call("CLIENT", "UNPAUSE");
      expect(settled).toBeUndefined();
      release.open();
      await expect(result).resolves.toBe("done");
    } finally {
      await admin.call("CLIENT", "UNPAUSE").catch(() => {});
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
    }
  }, 60_000);
});
