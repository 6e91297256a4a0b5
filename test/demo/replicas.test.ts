import type { RedisClient } from "@coordis/core";
import { ApiKeys } from "@coordis/demo";
import { EventLog } from "@coordis/eventlog";
import { tickHistory } from "@coordis/lock";
import { Queue } from "@coordis/queue";
import { eventually, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_WAIT, openSse, type Replicas, startReplicas } from "./replicas.js";

// Three demo replicas (real processes) on one Redis started here: the demo end to end.
const prefix = testPrefix("demo");
const token = "test-admin-token";
const secret = "replicas-test-api-key-secret";
const keys = new ApiKeys(secret);
const BURST = 15;
const DAILY = 25;
let redis: RedisServer;
let client: RedisClient;
let replicas: Replicas;
let urls: string[];

beforeAll(async () => {
  redis = await startRedis({ leastPrivilege: true });
  client = redis.client();
  replicas = await startReplicas(3, {
    REDIS_URL: redis.url,
    COORDIS_PREFIX: prefix,
    ADMIN_TOKEN: token,
    API_KEY_SECRET: secret,
    RATE_LIMIT_BURST: String(BURST),
    RATE_LIMIT_BURST_WINDOW_MS: "5000",
    RATE_LIMIT_DAILY: String(DAILY),
    SNAPSHOT_EVERY_MS: "1000",
    ROLLUP_EVERY_MS: "1500",
  });
  urls = replicas.urls;
});

afterAll(async () => {
  await replicas?.stop();
  await redis?.stop();
});

/** Stream id order: `<ms>-<seq>` compared numerically. */
const idAtMost = (a: string, b: string) => {
  const [am, as] = a.split("-").map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split("-").map(BigInt) as [bigint, bigint];
  return am < bm || (am === bm && as <= bs);
};

let keyCount = 0;
/** A fresh issued API key per call, so tests never share a rate-limit budget. */
const freshKey = () => keys.issue(`k${process.pid}-${keyCount++}`);
const idOf = (key: string) => key.slice(0, key.indexOf("."));
const at = (i: number) => urls[i % urls.length] as string;
const post = (base: string, path: string, body: unknown, key = freshKey()) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key },
    body: JSON.stringify(body),
  });

describe("demo across three replicas", () => {
  it("holds the two-rule limit globally when requests are spread round-robin", async () => {
    const key = freshKey();
    const burst = async (n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) =>
          fetch(`${at(i)}/v1/leaderboards/all/top?n=3`, { headers: { "x-api-key": key } }),
        ),
      );
    const first = await burst(40);
    expect(new Set(first.map((r) => r.headers.get("x-replica-id")))).toEqual(new Set(replicas.ids));
    expect(first.filter((r) => r.status === 200)).toHaveLength(BURST);
    expect(first.filter((r) => r.status === 429)).toHaveLength(40 - BURST);
    for (const r of first) {
      expect(r.headers.get("ratelimit-policy")).toBe(`"burst";q=${BURST};w=5, "daily";q=${DAILY};w=86400`);
      expect(r.headers.get("ratelimit")).toMatch(/^"(burst|daily)";r=\d+;t=\d+$/);
    }
    const rejected = first.find((r) => r.status === 429);
    expect(rejected?.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(Number(rejected?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);

    // Wait (polling the replicas' own view) until the burst rule is full again; then the daily rule binds.
    await eventually(
      "the burst window to reset",
      async () => {
        const state = (await (await fetch(`${at(1)}/v1/ratelimit/${idOf(key)}`)).json()) as {
          rules: Array<{ name: string; remaining: number }>;
        };
        return state.rules.find((r) => r.name === "burst")?.remaining === BURST ? true : undefined;
      },
      { ...DEMO_WAIT, intervalMs: 200 },
    );
    const second = await burst(40);
    expect(second.filter((r) => r.status === 200)).toHaveLength(DAILY - BURST);
    const last = second.find((r) => r.status === 429) as Response;
    expect(((await last.json()) as { detail: string }).detail).toContain('"daily"');
  });

  it("accepts a key issued through one replica on every replica, and only issued keys", async () => {
    const res = await fetch(`${at(0)}/v1/admin/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ count: 1 }),
    });
    expect(res.status).toBe(201);
    const [issued] = ((await res.json()) as { keys: Array<{ id: string; key: string }> }).keys;
    const key = issued?.key as string;
    const spend = (i: number, k: string) =>
      fetch(`${at(i)}/v1/leaderboards/all/top?n=1`, { headers: { "x-api-key": k } });
    for (let i = 0; i < 3; i++) expect((await spend(i, key)).status).toBe(200);
    const state = (await (await fetch(`${at(2)}/v1/ratelimit/${issued?.id}`)).json()) as {
      rules: Array<{ name: string; remaining: number }>;
    };
    expect(state.rules.find((r) => r.name === "burst")?.remaining).toBe(BURST - 3);
    // Another secret's key, and 20 made-up keys, get no budget on any replica.
    const foreign = new ApiKeys("some-other-secret-entirely").issue(issued?.id);
    for (let i = 0; i < 3; i++) expect((await spend(i, foreign)).status).toBe(401);
    const madeUp = await Promise.all(Array.from({ length: 20 }, (_, i) => spend(i, `made-up-${i}`)));
    expect(madeUp.map((r) => r.status)).toEqual(Array(20).fill(400));
  });

  it("runs each cron tick on exactly one replica", async () => {
    const history = await eventually(
      "four snapshot runs",
      async () => {
        const runs = await tickHistory(client, "snapshot-top10", { prefix, limit: 100 });
        return runs.length >= 4 ? runs : undefined;
      },
      { ...DEMO_WAIT, timeoutMs: 20_000, intervalMs: 250 },
    );
    const ticks = history.map((r) => r.tick);
    expect(new Set(ticks).size).toBe(ticks.length);
    for (const r of history) {
      expect(replicas.ids).toContain(r.owner);
      expect(r.tick % 1000).toBe(0);
      expect(r.ok).toBe(true);
    }
    // The audit log has one job-run entry per tick, recorded by the replica that ran it.
    const audit = (await (
      await fetch(`${at(0)}/v1/audit?limit=100`, { headers: { "x-api-key": freshKey() } })
    ).json()) as {
      entries: Array<{ data: { type: string; job?: string; tick?: number; replica?: string } }>;
    };
    const runs = audit.entries.filter((e) => e.data.type === "job-run" && e.data.job === "snapshot-top10");
    const perTick = new Map<number, number>();
    for (const e of runs) perTick.set(e.data.tick as number, (perTick.get(e.data.tick as number) ?? 0) + 1);
    expect([...perTick.values()].every((n) => n === 1)).toBe(true);
    for (const r of history) {
      if (perTick.has(r.tick)) expect(runs.find((e) => e.data.tick === r.tick)?.data.replica).toBe(r.owner);
    }
  });

  it("delivers a score submitted on replica A to an SSE client on replica C", async () => {
    const sse = await openSse(`${at(2)}/v1/events`);
    try {
      const hello = await sse.next((e) => e.event === "hello");
      expect(hello.data).toEqual({ replica: "r3" });
      const player = `sse-${Date.now()}`;
      const res = await post(at(0), "/v1/scores", { playerId: player, score: 999_999_999, name: "Top" });
      expect(res.status).toBe(201);
      expect(res.headers.get("x-replica-id")).toBe("r1");
      const got = await sse.next((e) => e.event === "top10" && (e.data as { playerId: string }).playerId === player);
      expect(got.data).toMatchObject({ replica: "r1", score: 999_999_999, ranks: { all: 1, daily: 1 } });
      expect((got.data as { top: { all: Array<{ playerId: string }> } }).top.all[0]?.playerId).toBe(player);
    } finally {
      sse.close();
    }
  });

  it("pages the audit log by cursor and verifies its hash chain (admin only)", async () => {
    const players = Array.from({ length: 5 }, (_, i) => `audit-${Date.now()}-${i}`);
    for (const p of players) expect((await post(at(0), "/v1/scores", { playerId: p, score: 1 })).status).toBe(201);
    for (const [i, p] of players.entries()) {
      const res = await fetch(`${at(i)}/v1/players/${p}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(204);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const query = `limit=3${cursor === undefined ? "" : `&cursor=${cursor}`}`;
      const res = await fetch(`${at(page)}/v1/audit?${query}`, { headers: { "x-api-key": freshKey() } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        entries: Array<{ id: string; data: { type: string; playerId?: string } }>;
        next?: string;
      };
      expect(body.entries.length).toBeLessThanOrEqual(3);
      seen.push(...body.entries.map((e) => e.id));
      if (body.next === undefined) break;
      cursor = body.next;
    }
    expect(new Set(seen).size).toBe(seen.length);
    const asc = [...seen].reverse();
    const log = new EventLog<{ type: string; playerId?: string }>(client, "audit", { prefix, chain: true });
    const newest = seen[0] as string;
    const all = (await log.read({ limit: 1000 })).entries.filter((e) => idAtMost(e.id, newest));
    expect(asc).toEqual(all.map((e) => e.id));
    for (const p of players)
      expect(all.some((e) => e.data.type === "player-deleted" && e.data.playerId === p)).toBe(true);

    const verify = await fetch(`${at(1)}/v1/audit/verify`, { headers: { authorization: `Bearer ${token}` } });
    expect(verify.status).toBe(200);
    expect(await verify.json()).toMatchObject({ ok: true });
    for (const auth of [undefined, "Bearer wrong", `Bearer ${token}x`, token]) {
      const res = await fetch(
        `${at(2)}/v1/audit/verify`,
        auth === undefined ? {} : { headers: { authorization: auth } },
      );
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
  });

  it("caches profiles across replicas and invalidates them on every replica after an update", async () => {
    const player = `prof-${Date.now()}`;
    type P = { name: string; loadedBy: string; loadedAt: number };
    const get = async (base: string) =>
      (await (await fetch(`${base}/v1/players/${player}`, { headers: { "x-api-key": freshKey() } })).json()) as P;
    const submitted = await post(at(0), "/v1/scores", { playerId: player, score: 10, name: "Before" });
    expect(submitted.status).toBe(201);
    // The submission's stats job drops the cached profile once more when its stats land: wait for it first.
    const queue = new Queue(client, "player-stats", { prefix });
    await queue.result(((await submitted.json()) as { statsJob: string }).statsJob, { timeoutMs: 20_000 });
    await queue.close();
    // The first read loads (on r1); the others hit the shared L2, then each replica's L1.
    const warm = [];
    for (const base of urls) warm.push(await get(base));
    for (const base of urls) warm.push(await get(base));
    for (const p of warm) expect(p).toMatchObject({ name: "Before", loadedBy: "r1", loadedAt: warm[0]?.loadedAt });

    const put = await fetch(`${at(1)}/v1/players/${player}`, {
      method: "PUT",
      headers: { "content-type": "application/json", "x-api-key": freshKey() },
      body: JSON.stringify({ name: "After" }),
    });
    expect(put.status).toBe(200);
    // The delete resolves once Redis handed the invalidation to every replica; allow only its delivery time.
    for (const base of urls) {
      const fresh = await eventually(
        `${base} to drop its cached profile`,
        async () => {
          const p = await get(base);
          return p.name === "After" ? p : undefined;
        },
        { ...DEMO_WAIT, timeoutMs: 2_000, intervalMs: 20 },
      );
      expect(fresh.loadedAt).toBeGreaterThan(warm[0]?.loadedAt ?? 0);
    }
  });

  it("fans each score out to a stats job that some replica runs, and stores the player's stats fenced", async () => {
    const player = `stats-${Date.now()}`;
    const scores = [120, 75, 300, 42, 210, 99];
    const jobs: string[] = [];
    for (const [i, score] of scores.entries()) {
      const res = await post(at(i), "/v1/scores", { playerId: player, score, name: "Stats" });
      expect(res.status).toBe(201);
      jobs.push(((await res.json()) as { statsJob: string }).statsJob);
    }
    expect(new Set(jobs).size).toBe(scores.length);
    const queue = new Queue<{ playerId: string }, { applied: boolean; fence: number }>(client, "player-stats", {
      prefix,
    });
    try {
      const results = await Promise.all(jobs.map((id) => queue.result(id, { timeoutMs: 20_000 })));
      // Adding a submission's job again creates nothing.
      expect(await queue.add({ playerId: player }, { id: jobs[0] as string })).toEqual({
        id: jobs[0],
        duplicate: true,
      });
      // The stats readers see are the highest fence's, computed after the last submission.
      const top = Math.max(...results.map((r) => r.fence));
      expect(results.find((r) => r.fence === top)?.applied).toBe(true);
      type Stats = { submissions: number; best: number; average: number; fence: number; computedBy: string };
      const stats = await eventually(
        `${player}'s stats on r3`,
        async () => {
          const res = await fetch(`${at(2)}/v1/players/${player}`, { headers: { "x-api-key": freshKey() } });
          const p = (await res.json()) as { stats: Stats | null };
          return p.stats?.fence === top ? p.stats : undefined;
        },
        DEMO_WAIT,
      );
      expect(stats).toMatchObject({ submissions: scores.length, best: 300, average: 141 });
      expect(replicas.ids).toContain(stats.computedBy);
    } finally {
      await queue.close();
    }
  });

  it("ends a failing stats job in the dead letters; an admin retry requeues it", async () => {
    const player = `dead-${Date.now()}`;
    const res = await post(at(0), "/v1/scores", { playerId: player, score: 7, name: "Poison" });
    expect(res.status).toBe(201);
    const id = ((await res.json()) as { statsJob: string }).statsJob;
    type QueueView = {
      counts: { dead: number };
      deadLetters: Array<{ id: string; playerId: string; attempts: number; error: string }>;
    };
    const dead = await eventually(
      `${id} in the dead letters`,
      async () => {
        const view = (await (await fetch(`${at(1)}/v1/queue`)).json()) as QueueView;
        return view.deadLetters.find((j) => j.id === id);
      },
      DEMO_WAIT,
    );
    expect(dead).toMatchObject({ playerId: player, attempts: 3 });
    expect(dead.error).toContain('player named "Poison"');

    const retry = (base: string, auth?: string, job = id) =>
      fetch(`${base}/v1/admin/queue/dead/${encodeURIComponent(job)}/retry`, {
        method: "POST",
        headers: auth === undefined ? {} : { authorization: auth },
      });
    expect((await retry(at(1))).status).toBe(401);
    expect((await retry(at(1), "Bearer wrong")).status).toBe(401);
    expect((await retry(at(1), `Bearer ${token}`, `${id}-nope`)).status).toBe(404);

    // Fix the cause, then retry from any replica: the job runs again with fresh attempts and completes.
    const rename = await fetch(`${at(2)}/v1/players/${player}`, {
      method: "PUT",
      headers: { "content-type": "application/json", "x-api-key": freshKey() },
      body: JSON.stringify({ name: "Cured" }),
    });
    expect(rename.status).toBe(200);
    expect((await retry(at(2), `Bearer ${token}`)).status).toBe(204);
    const queue = new Queue<{ playerId: string }, { applied: boolean }>(client, "player-stats", { prefix });
    try {
      expect(await queue.result(id, { timeoutMs: 20_000 })).toMatchObject({ applied: true });
      expect((await queue.get(id))?.state).toBe("completed");
    } finally {
      await queue.close();
    }
    const view = (await (await fetch(`${at(0)}/v1/queue`)).json()) as QueueView;
    expect(view.deadLetters.some((j) => j.id === id)).toBe(false);
    expect((await retry(at(0), `Bearer ${token}`)).status).toBe(404);
    const profile = (await (
      await fetch(`${at(0)}/v1/players/${player}`, { headers: { "x-api-key": freshKey() } })
    ).json()) as { stats: { submissions: number } | null };
    expect(profile.stats).toMatchObject({ submissions: 1, best: 7, average: 7 });

    // The retry is audited, and the charts counted the dead letter and the completions, fleet-wide.
    const audit = (await (
      await fetch(`${at(1)}/v1/audit?limit=50`, { headers: { "x-api-key": freshKey() } })
    ).json()) as { entries: Array<{ data: { type: string; jobId?: string } }> };
    expect(audit.entries.some((e) => e.data.type === "job-retried" && e.data.jobId === id)).toBe(true);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    await eventually(
      "the charts to count the dead letter and completions",
      async () => {
        const a = (await (await fetch(`${at(1)}/v1/activity`)).json()) as { counters: Record<string, number[]> };
        const c = a.counters as Record<"dead" | "completed" | "retried" | "allowed", number[]>;
        return sum(c.dead) >= 1 && sum(c.retried) >= 2 && sum(c.completed) >= 7 && sum(c.allowed) >= 7
          ? true
          : undefined;
      },
      DEMO_WAIT,
    );
  });

  it("exposes coordis_ metrics on every replica", async () => {
    for (const base of urls) {
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toMatch(/^coordis_ratelimit_decisions_total\{/m);
      expect(text).toMatch(/^coordis_operations_total\{primitive="leaderboard"/m);
      expect(text).toMatch(/^coordis_operations_total\{primitive="eventlog"/m);
      expect(text).toMatch(/^coordis_operation_duration_seconds_bucket\{/m);
    }
    const all = (await Promise.all(urls.map(async (u) => (await fetch(`${u}/metrics`)).text()))).join("\n");
    expect(all).toMatch(/^coordis_operations_total\{primitive="lock",op="tick"/m);
    expect(all).toMatch(/^coordis_cache_requests_total\{[^}]*result="hit"[^}]*\} [1-9]/m);
  });

  // Last: it kills the shared Redis.
  it("fails /readyz while Redis is down and recovers after it restarts", async () => {
    for (const base of urls) expect((await fetch(`${base}/readyz`)).status).toBe(200);
    await redis.kill();
    for (const base of urls) {
      await eventually(
        `${base}/readyz to fail`,
        async () => ((await fetch(`${base}/readyz`)).status === 503 ? true : undefined),
        DEMO_WAIT,
      );
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    }
    await redis.restart();
    for (const base of urls) {
      await eventually(
        `${base}/readyz to recover`,
        async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined),
        { ...DEMO_WAIT, timeoutMs: 20_000, intervalMs: 200 },
      );
    }
    expect((await post(at(2), "/v1/scores", { playerId: "after-restart", score: 5 })).status).toBe(201);
  });
});
