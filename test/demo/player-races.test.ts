import { entityKeys, type RedisClient } from "@coordis/core";
import { Queue } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Replicas, startReplicas } from "./replicas.js";

// A player deleted (admin) while another replica renames it or records a score for it: two demo replicas (real
// processes) on a Redis started here, as the least-privilege user. Whatever order the requests interleave in, the
// player ends either deleted everywhere (no profile, on no board) or whole (a profile with its submissions, on the
// boards under the profile's name); never a profile without submissions, nor a board entry or stats without a
// profile.
const prefix = testPrefix("demo-races");
const token = "player-races-admin-token";
const TRIALS = 25;
/** The stats test's window (between a job's read of the player and its write) is narrow: more tries. */
const JOB_TRIALS = 80;
let redis: RedisServer;
let client: RedisClient;
let replicas: Replicas;
let urls: [string, string];

beforeAll(async () => {
  redis = await startRedis({ leastPrivilege: true });
  client = redis.adminClient();
  replicas = await startReplicas(2, {
    REDIS_URL: redis.url,
    COORDIS_PREFIX: prefix,
    ADMIN_TOKEN: token,
    RATE_LIMIT_BURST: "1000000",
    RATE_LIMIT_DAILY: "1000000000",
    // The admin routes allow 60 calls a minute per address: each delete comes from an address of its own.
    TRUST_PROXY: "true",
  });
  urls = replicas.urls as [string, string];
});

afterAll(async () => {
  await replicas?.stop();
  await redis?.stop();
});

let addresses = 0;
const call = (base: string, method: string, path: string, body?: unknown) =>
  fetch(`${base}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(method === "DELETE" ? { authorization: `Bearer ${token}` } : {}),
      "x-forwarded-for": `10.9.${Math.floor(addresses / 250)}.${(addresses++ % 250) + 1}`,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
const submit = (base: string, body: { playerId: string; score: number; name?: string }) =>
  call(base, "POST", "/v1/scores", body);
const remove = (base: string, id: string) => call(base, "DELETE", `/v1/players/${id}`);

/** Runs `a` and `b` at once, the one or the other sent first. */
const race = <A, B>(trial: number, a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> =>
  trial % 2 === 0 ? Promise.all([a(), b()]) : Promise.all([b(), a()]).then(([y, x]) => [x, y]);

interface Seen {
  /** The profile hash as stored, or null. */
  stored: Record<string, string> | null;
  profile: { status: number; name?: string; submissions?: number; createdAt?: number };
  boards: { all: number; daily: number; allName?: string; dailyName?: string };
}

/** What the player looks like now: its stored profile, `GET /v1/players/:id` and both boards (each replica once). */
async function look(id: string): Promise<Seen> {
  const hash = await client.hgetall(entityKeys(prefix, "player", id).base);
  const profile = await call(urls[1], "GET", `/v1/players/${id}`);
  const board = async (period: string, base: string) => {
    const res = await call(base, "GET", `/v1/leaderboards/${period}/players/${id}?radius=0`);
    return { status: res.status, name: ((await res.json()) as { player?: { name?: string } }).player?.name };
  };
  const [all, daily] = await Promise.all([board("all", urls[0]), board("daily", urls[1])]);
  return {
    stored: Object.keys(hash).length === 0 ? null : hash,
    profile: { status: profile.status, ...((await profile.json()) as object) },
    boards: { all: all.status, daily: daily.status, allName: all.name, dailyName: daily.name },
  };
}

/** Why `seen` is neither "deleted everywhere" nor "whole", or undefined when it is one of them. */
function broken(seen: Seen): string | undefined {
  const { stored, profile, boards } = seen;
  if (stored === null) {
    if (profile.status === 404 && boards.all === 404 && boards.daily === 404) return undefined;
    return "on a board (or served) without a stored profile";
  }
  if (!(Number(stored.submissions) >= 1 && Number(stored.createdAt) > 0)) return "a profile without submissions";
  if (profile.status !== 200 || boards.all !== 200 || boards.daily !== 200) return "a profile missing from a board";
  if (boards.allName !== stored.name || boards.dailyName !== stored.name) return "boards and profile disagree";
  return undefined;
}

describe("demo players deleted while other requests change them", () => {
  it("never resurrects a player deleted while a rename of it runs on another replica", async () => {
    const bad: string[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const id = `ren-del-${trial}`;
      expect((await submit(urls[0], { playerId: id, score: 10, name: "Before" })).status).toBe(201);
      const [put, del] = await race(
        trial,
        () => call(urls[0], "PUT", `/v1/players/${id}`, { name: "After" }),
        () => remove(urls[1], id),
      );
      expect(del.status).toBe(204);
      // The rename either ran first (and answers the renamed profile) or found no player.
      const body = (await put.json()) as { name?: string } | null;
      if (put.status !== 404 && !(put.status === 200 && body?.name === "After")) {
        bad.push(`${id}: PUT answered ${put.status} ${JSON.stringify(body)}`);
      }
      const seen = await look(id);
      const why = seen.stored === null ? broken(seen) : "the deleted player has a profile again";
      if (why !== undefined) bad.push(`${id}: ${why}: ${JSON.stringify(seen)}`);
    }
    expect(bad, `${bad.length} of ${TRIALS} races went wrong`).toEqual([]);
  });

  it("leaves a player either deleted everywhere or whole when a score for it races its deletion", async () => {
    const bad: string[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const id = `sub-del-${trial}`;
      const named = trial % 4 >= 2;
      expect((await submit(urls[0], { playerId: id, score: 10, name: "First" })).status).toBe(201);
      const [posted, del] = await race(
        trial,
        () => submit(urls[0], named ? { playerId: id, score: 20, name: "Then" } : { playerId: id, score: 20 }),
        () => remove(urls[1], id),
      );
      expect(posted.status).toBe(201);
      expect(del.status).toBe(204);
      const { statsJob } = (await posted.json()) as { statsJob: string };
      const seen = await look(id);
      const why = broken(seen);
      if (why !== undefined) bad.push(`${id}: ${why}: ${JSON.stringify(seen)}`);
      else if (seen.stored !== null) {
        // Whole again: the submission came after the delete, so it is the player's first and only one.
        const { name, submissions, total, createdAt } = seen.stored;
        const expected = {
          name: named ? "Then" : id,
          submissions: "1",
          total: "20",
          statsJob: `stats:${id}:${createdAt}:1`,
        };
        const got = { name, submissions, total, statsJob };
        if (JSON.stringify(got) !== JSON.stringify(expected))
          bad.push(`${id}: ${JSON.stringify(got)}, not ${JSON.stringify(expected)}`);
      }
    }
    expect(bad, `${bad.length} of ${TRIALS} races went wrong`).toEqual([]);
  });

  it("leaves no stats behind for a player deleted while its stats job runs", async () => {
    const queue = new Queue(client, "player-stats", { prefix });
    const bad: string[] = [];
    // A score outside the top 10 is answered right after its job was added (nothing to publish), so the delete sent
    // then lands while the job runs (reads the player, its rank, then writes its stats) or just before or after it.
    for (let i = 0; i < 10; i++) {
      expect((await submit(urls[0], { playerId: `job-top-${i}`, score: 1_000 })).status).toBe(201);
    }
    try {
      for (let trial = 0; trial < JOB_TRIALS; trial++) {
        const id = `job-del-${trial}`;
        const posted = await submit(urls[trial % 2] as string, { playerId: id, score: 0, name: "Gone" });
        expect(posted.status).toBe(201);
        expect((await remove(urls[(trial + 1) % 2] as string, id)).status).toBe(204);
        const { statsJob } = (await posted.json()) as { statsJob: string };
        const result = await queue.result(statsJob, { timeoutMs: 20_000 });
        const keys = entityKeys(prefix, "player", id);
        const left = await client.exists(keys.base, keys.sub("stats"));
        if (left !== 0) bad.push(`${id}: ${left} key(s) left after ${JSON.stringify(result)}`);
      }
    } finally {
      await queue.close();
    }
    expect(bad, `${bad.length} of ${JOB_TRIALS} deletions left stats`).toEqual([]);
  });
});
