import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-edges");

describe("adds, odd names, group order under load, closes racing fetches", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("addMany with one id twice in one call: the first is created, the second a duplicate, it runs once", async () => {
    const name = "dup-in-call";
    const q = queue<number, number>(name, { partitions: 2 });
    const res = await q.addMany([
      { data: 1, opts: { id: "a" } },
      { data: 2, opts: { id: "a", delayMs: 50 } },
      { data: 3, opts: { id: "{t}b" } },
      { data: 4, opts: { id: "{t}b", priority: 3 } },
      { data: 5, opts: { id: "c", priority: 2 } },
      { data: 6, opts: { id: "c" } },
    ]);
    expect(res.map((r) => [r.id, r.duplicate])).toEqual([
      ["a", false],
      ["a", true],
      ["{t}b", false],
      ["{t}b", true],
      ["c", false],
      ["c", true],
    ]);
    const runs: string[] = [];
    worker<number, number>(
      name,
      async (job) => {
        runs.push(`${job.id}=${job.data}`);
        return job.data;
      },
      { partitions: 2 },
    );
    expect(await q.result("a", { timeoutMs: 10_000 })).toBe(1);
    expect(await q.result("{t}b", { timeoutMs: 10_000 })).toBe(3);
    expect(await q.result("c", { timeoutMs: 10_000 })).toBe(5);
    expect((await q.counts()).waiting + (await q.counts()).delayed).toBe(0);
    expect(runs.sort()).toEqual(["a=1", "c=5", "{t}b=3"]);
  });

  it("odd ids and group names (braces, unicode, 256 bytes, regex-like characters) run and read back", async () => {
    const name = "odd-ids";
    const q = queue<string, string>(name, { partitions: 3 });
    const ids = [
      "{}",
      "{",
      "}",
      "{a}{b}",
      "x{}y",
      "日本語🎉",
      "a".repeat(256),
      "é".repeat(128),
      "[",
      "%d%s",
      "*?",
      "h:x",
      " ",
      "\u00a0",
    ];
    const groups = ["{g}", "[", "%", "é".repeat(128), "g\u00a0", "g"];
    await q.addMany(ids.map((id, i) => ({ data: id, opts: { id, group: groups[i % groups.length] } })));
    const started: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        started.push(job.id);
        return `${job.id}!`;
      },
      { partitions: 3, concurrency: 4, groups: { concurrency: 1 } },
    );
    for (const id of ids) expect(await q.result(id, { timeoutMs: 10_000 })).toBe(`${id}!`);
    for (const id of ids) expect(await q.get(id)).toMatchObject({ id, state: "completed" });
    expect(started.sort()).toEqual([...ids].sort());
  });

  it("many workers, one group of limit 1 amid other groups: the group's jobs start in the order they were added", async () => {
    const name = "fifo-load";
    const q = queue<number, number>(name, { partitions: 2 });
    const starts: number[] = [];
    let running = 0;
    let over = 0;
    for (let w = 0; w < 4; w++) {
      worker<number, number>(
        name,
        async (job) => {
          if (job.id.startsWith("{g}")) {
            running++;
            if (running > 1) over++;
            starts.push(job.data);
            await new Promise((r) => setImmediate(r));
            running--;
          }
          return job.data;
        },
        { partitions: 2, concurrency: 5, groups: { concurrency: 1 } },
      );
    }
    const n = 80;
    for (let i = 0; i < n; i += 8) {
      await q.addMany(
        Array.from({ length: 8 }, (_, k) => {
          const j = i + k;
          return j % 2 === 0
            ? { data: j, opts: { id: `{g}${j}`, group: "g" } }
            : { data: j, opts: { id: `o${j}`, group: `o${j % 3}` } };
        }),
      );
    }
    await waitUntil("all done", async () => (await q.counts()).completed === n, 20_000);
    expect(over).toBe(0);
    expect(starts).toEqual(Array.from({ length: n / 2 }, (_, i) => 2 * i));
  });

  it("workers closed at once, again and again, while fetches are in flight: every job ends completed at attempt 1", async () => {
    const name = "close-race";
    const q = queue<number, number>(name, { partitions: 2 });
    await q.addMany(Array.from({ length: 40 }, (_, i) => ({ data: i, opts: { id: `j${i}`, group: `g${i % 4}` } })));
    // Handlers that never end on their own: each close hands their jobs back (a lease of 2 min: a job lost by a close,
    // left to its lease, would not complete within the test).
    let startedEarly = 0;
    for (let round = 0; round < 15; round++) {
      const w = worker<number, number>(
        name,
        async (job) => {
          startedEarly++;
          await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
          return job.data;
        },
        { partitions: 2, concurrency: 3, leaseMs: 120_000, groups: { concurrency: 1 } },
      );
      await w.ready();
      // Closed at once (its first fetches in flight), a few turns of the event loop later, or once a handler runs.
      if (round % 3 === 2) {
        const before = startedEarly;
        await waitUntil("a handler runs", () => startedEarly > before, 10_000);
      } else {
        for (let t = 0; t < round % 3; t++) await new Promise((r) => setImmediate(r));
      }
      await w.close({ timeoutMs: 0 });
    }
    expect(startedEarly).toBeGreaterThanOrEqual(5);
    worker<number, number>(name, async (job) => job.data, {
      partitions: 2,
      concurrency: 10,
      leaseMs: 120_000,
      groups: { concurrency: 1 },
    });
    await waitUntil("all completed", async () => (await q.counts()).completed === 40, 15_000);
    for (let i = 0; i < 40; i++) expect((await q.get(`j${i}`))?.attempts).toBe(1);
  });
});

describe("group limits under churn", () => {
  const { worker, queue } = onSharedServer(`${prefix}-churn`);

  for (const seed of [11]) {
    it(`seed ${seed}: backlog, cancels of waiting and delayed jobs, workers closed and restarted: limits hold, nothing stuck`, async () => {
      let s = seed;
      const rnd = () => {
        s = (s * 1103515245 + 12345) % 2147483648;
        return s / 2147483648;
      };
      const name = `stress2-${seed}`;
      const P = 2;
      const q = queue<number, number>(name, { partitions: P });
      const running = new Map<string, number>();
      let over = "";
      const handler = async (job: { id: string; data: number; signal: AbortSignal }) => {
        const g = `${job.id.slice(0, 4)}`;
        const n = (running.get(g) ?? 0) + 1;
        running.set(g, n);
        if (n > 2) over = `${g} ran ${n}`;
        let done = false;
        const end = () => {
          if (done) return;
          done = true;
          running.set(g, (running.get(g) ?? 0) - 1);
        };
        job.signal.addEventListener("abort", end);
        for (let i = 0; i < (job.data % 5) * 3; i++) await new Promise((r) => setImmediate(r));
        end();
        return job.data;
      };
      const opts = {
        partitions: P,
        concurrency: 5,
        leaseMs: 60_000,
        groups: { concurrency: 2, rateLimit: [{ limit: 30, windowMs: 50 }] },
      };
      const n = 400;
      const ids = Array.from({ length: n }, (_, i) => `{g${i % 4}}${i}`);
      await q.addMany(
        ids.map((id, i) => ({
          data: i,
          opts: { id, group: `g${i % 4}`, priority: rnd() < 0.3 ? 5 : 0, ...(rnd() < 0.1 ? { delayMs: 30 } : {}) },
        })),
      );
      const workers = [0, 1, 2].map(() => worker<number, number>(name, handler as never, opts));
      const cancelled = new Set<string>();
      for (let k = 0; k < 60; k++) {
        const victim = ids[Math.floor(rnd() * n)] as string;
        const info = await q.get(victim);
        if ((info?.state === "waiting" || info?.state === "delayed") && (await q.cancel(victim))) cancelled.add(victim);
        if (rnd() < 0.08) {
          const i = Math.floor(rnd() * workers.length);
          await workers[i]?.close({ timeoutMs: 0 });
          workers[i] = worker<number, number>(name, handler as never, opts);
        }
      }
      await waitUntil(
        "every job finished",
        async () => {
          const c = await q.counts();
          return c.waiting + c.delayed + c.active === 0;
        },
        20_000,
      );
      expect(over).toBe("");
      const wrong: string[] = [];
      for (const id of ids) {
        const info = await q.get(id);
        const want = cancelled.has(id) ? "cancelled" : "completed";
        if (info?.state !== want) wrong.push(`${id}:${info?.state}`);
      }
      expect(wrong).toEqual([]);
    });
  }
});
