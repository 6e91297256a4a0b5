import { connect, type RedisClient } from "@coordis/core";
import { GROUP_SWEEP_MS } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-sweep");

describe("per-group rate-limit state", () => {
  const { queue, worker } = onSharedServer(prefix);
  // The queue's own user may not read the hash as a whole (HKEYS, HSET are outside its ACL rules).
  let admin: RedisClient;
  beforeAll(() => {
    admin = connect(inject("coordisAdminRedisUrl"));
  });
  afterAll(() => admin.disconnect());

  /** The rate-limit state fields ("r:<group>") of queue `name`'s groups hash. */
  async function stateFields(name: string): Promise<string[]> {
    const fields = await admin.hkeys(`${prefix}:queue:{${name}}:groups`);
    return fields.filter((f) => f.startsWith("r:")).sort();
  }

  it("is deleted once every rule's entry expired: a group that stops sending jobs leaves nothing behind", async () => {
    const q = queue<number>("expire");
    const done = new Set<number>();
    worker<number, void>(
      "expire",
      async (job) => {
        done.add(job.data);
      },
      { concurrency: 10, groups: { rateLimit: [{ limit: 5, windowMs: 400 }] } },
    );
    const groups = 40;
    await q.addMany(Array.from({ length: groups }, (_, i) => ({ data: i, opts: { group: `tenant-${i}` } })));
    await waitUntil("every job ran", () => done.size === groups, 15_000);
    // Each group's state was written (it held for the window)...
    expect((await stateFields("expire")).length).toBeGreaterThan(0);
    // ...and is gone after its window, at the latest a sweep pass later.
    await waitUntil(
      "the state to be swept",
      async () => (await stateFields("expire")).length === 0,
      3 * GROUP_SWEEP_MS,
    );
  }, 30_000);

  it("is kept while any rule's entry still matters, and keeps limiting", async () => {
    const name = "keep";
    const q = queue<string>(name);
    const started: string[] = [];
    worker<string, void>(
      name,
      async (job) => {
        started.push(job.data);
      },
      { groups: { rateLimit: [{ limit: 1, windowMs: 60_000 }] } },
    );
    await q.add("first", { group: "g" });
    await waitUntil("the first job ran", () => started.length === 1, 10_000);
    await q.add("second", { group: "g" });
    expect(await stateFields(name)).toEqual(["r:g"]);
    // An expired entry of another group (a past expiry time) beside the live one: once the sweep deleted it, it has
    // looked at r:g too (the hash is small: one scan call returns it whole).
    await admin.hset(`${prefix}:queue:{${name}}:groups`, "r:gone", "x|fw=1000:1:1");
    await waitUntil(
      "the expired entry to be swept",
      async () => !(await stateFields(name)).includes("r:gone"),
      3 * GROUP_SWEEP_MS,
    );
    expect(await stateFields(name)).toEqual(["r:g"]);
    expect(started).toEqual(["first"]);
    expect((await q.counts()).delayed + (await q.counts()).waiting).toBe(1);
  }, 30_000);
});
