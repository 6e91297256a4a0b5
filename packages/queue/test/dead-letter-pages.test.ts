import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-dead-letter-pages");

describe("deadLetters() pages", () => {
  const { worker, queue, redis } = onSharedServer(prefix);

  it("a walk that retries each page's jobs before reading the next page sees every dead letter once", async () => {
    const name = "retry-while-paging";
    const q = queue<number, number>(name);
    const w = worker<number, number>(name, async () => {
      throw new Error("no");
    });
    await q.addMany(Array.from({ length: 250 }, (_, i) => ({ data: i, opts: { id: `j${i}`, attempts: 1 } })));
    await waitUntil("250 dead letters", async () => (await q.counts()).dead === 250, 20_000);
    await w.close({ timeoutMs: 1_000 });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await q.deadLetters({ limit: 100, ...(cursor === undefined ? {} : { cursor }) });
      for (const job of page.jobs) {
        seen.push(job.id);
        expect(await q.retryDead(job.id)).toBe(true);
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
    expect(new Set(seen).size).toBe(250);
    expect(seen).toHaveLength(250);
    expect(await q.counts()).toMatchObject({ dead: 0, waiting: 250 });
  });

  it("across partitions, with every death at one time: retrying each page's last job before the next page skips none, repeats none", async () => {
    const name = "same-ms";
    const q = queue<number, number>(name, { partitions: 2 });
    const dead = [0, 1].map((p) => `${prefix}:queue:{${name}#${p}}:dead`);
    const w = worker<number, number>(
      name,
      async () => {
        throw new Error("no");
      },
      { partitions: 2 },
    );
    await q.addMany(Array.from({ length: 60 }, (_, i) => ({ data: i, opts: { id: `t${i}`, attempts: 1 } })));
    await waitUntil("60 dead letters", async () => (await q.counts()).dead === 60, 20_000);
    await w.close({ timeoutMs: 1_000 });
    // Every death of a partition in the same ms: the order within it is the ids' (as Redis sorts equal scores).
    for (const key of dead) {
      const ids = await redis().zrange(key, "0", "-1");
      await redis().zadd(key, ...ids.flatMap((id) => ["5", id]));
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await q.deadLetters({ limit: 7, ...(cursor === undefined ? {} : { cursor }) });
      seen.push(...page.jobs.map((j) => j.id));
      // The job the cursor points after leaves the dead letters before the next page is read.
      const last = page.jobs.at(-1);
      if (last !== undefined) expect(await q.retryDead(last.id)).toBe(true);
      cursor = page.cursor;
    } while (cursor !== undefined);
    const expected = (await Promise.all(dead.map((key) => redis().zrange(key, "0", "-1")))).flat();
    expect(new Set(seen).size).toBe(60);
    expect(seen).toHaveLength(60);
    expect(expected.length).toBeLessThan(60);
    // What is still dead was read in the order of the partitions and of each one's zset.
    expect(seen.filter((id) => expected.includes(id))).toEqual(expected);
  });
});
