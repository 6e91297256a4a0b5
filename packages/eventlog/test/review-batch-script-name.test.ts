import { ScriptError } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elbatchname");

// An append that fails inside Redis as part of a micro-batch rejects its caller with a ScriptError naming the script
// that ran: the batch script, not the single-append one it was not sent as.
describe("batched appends failing inside Redis", () => {
  const clients = sharedClients();

  it("reject each caller with ScriptError naming eventlog/append-batch", async () => {
    const log = new EventLog<number>(clients.redis, "batch-wrongtype", { prefix, batch: true });
    await clients.admin.set(log.keys.stream, "not a stream");
    // Issued in one turn: one append-batch call.
    const results = await Promise.allSettled([log.append(1), log.append(2), log.append(3)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
    for (const r of results) {
      const error = (r as PromiseRejectedResult).reason as ScriptError;
      expect(error).toBeInstanceOf(ScriptError);
      expect(error.script).toBe("eventlog/append-batch");
      expect(error.message).toContain('"eventlog/append-batch"');
      expect(error.redisMessage).toMatch(/^WRONGTYPE/);
    }
    // An append alone in its turn still goes as the single-append script, and is named so.
    await expect(log.append(4)).rejects.toMatchObject({ script: "eventlog/append" });
  });
});
