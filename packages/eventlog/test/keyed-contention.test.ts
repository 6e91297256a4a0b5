import { EventLog } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elcontend");
const keyed = { key: Buffer.from("0123456789abcdef0123456789abcdef"), keyId: "k1" };

describe("a keyed chain with many appenders", () => {
  const clients = sharedClients();

  it("8 instances x 10 appends in flight: every append lands, in one unbroken chain", async () => {
    const name = `contended-${Date.now()}`;
    const instances = Array.from(
      { length: 8 },
      () => new EventLog<{ w: number; i: number }>(clients.redis, name, { prefix, chain: keyed }),
    );
    const perInstance = 150;
    const failures: unknown[] = [];
    await Promise.all(
      instances.flatMap((log, w) =>
        // 10 callers per instance, each appending its share one after another.
        Array.from({ length: 10 }, async (_, c) => {
          for (let i = c; i < perInstance; i += 10) {
            await log.append({ w, i }).catch((err: unknown) => failures.push(err));
          }
        }),
      ),
    );
    expect(failures).toEqual([]);
    const check = await (instances[0] as EventLog<{ w: number; i: number }>).verify();
    expect(check).toMatchObject({ ok: true, checked: 8 * perInstance });
  }, 60_000);
});
