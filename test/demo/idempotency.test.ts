import { createHash, randomUUID } from "node:crypto";
import { connect } from "@coordis/core";
import { buildApp, loadConfig } from "@coordis/demo";
import { startProxy, testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// `POST /v1/scores` with an `Idempotency-Key`: a retry of a submission whose answer was lost gets the first answer
// again and counts once; the key with another body is a 422, a retry while the first runs a 409; keys are scoped per
// API key; malformed keys are a 400. In-process against the suite's Redis.
const token = "idempotency-admin-token";
const prefix = testPrefix("demo-idem");
let app: FastifyInstance;
let keyA: string;
let keyB: string;

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: prefix,
    ADMIN_TOKEN: token,
    REPLICA_ID: "idem",
    RATE_LIMIT_BURST: "1000000",
    RATE_LIMIT_DAILY: "1000000000",
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  const res = await app.inject({
    method: "POST",
    url: "/v1/admin/keys",
    headers: { authorization: `Bearer ${token}` },
    payload: { count: 2 },
  });
  expect(res.statusCode, res.body).toBe(201);
  [keyA, keyB] = (res.json() as { keys: Array<{ key: string }> }).keys.map((k) => k.key) as [string, string];
});

afterAll(async () => {
  await app?.close();
});

let players = 0;
const newPlayer = () => `idem-${++players}-${randomUUID().slice(0, 8)}`;

function submit(payload: unknown, headers: Record<string, string> = {}, apiKey = keyA) {
  return app.inject({
    method: "POST",
    url: "/v1/scores",
    headers: { "x-api-key": apiKey, "content-type": "application/json", ...headers },
    payload: typeof payload === "string" ? payload : JSON.stringify(payload),
  });
}

/** The player's submission count (its profile), or null when there is no such player. */
async function submissions(playerId: string): Promise<number | null> {
  const res = await app.inject({ method: "GET", url: `/v1/players/${playerId}`, headers: { "x-api-key": keyA } });
  if (res.statusCode === 404) return null;
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { submissions: number }).submissions;
}

describe("demo POST /v1/scores Idempotency-Key", () => {
  it("replays the first answer to a retry with the same key and body, counted once", async () => {
    const playerId = newPlayer();
    const key = randomUUID();
    const first = await submit({ playerId, score: 100 }, { "idempotency-key": key });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.headers["idempotency-replayed"]).toBeUndefined();
    const firstJob = (first.json() as { statsJob: string }).statsJob;

    // The same body written in another key order and spacing is the same request.
    const retry = await submit(`{ "score": 100,  "playerId": "${playerId}" }`, { "idempotency-key": key });
    expect(retry.statusCode, retry.body).toBe(201);
    expect(retry.headers["idempotency-replayed"]).toBe("true");
    expect(retry.headers["content-type"]).toBe(first.headers["content-type"]);
    expect(retry.body).toBe(first.body);
    expect(await submissions(playerId)).toBe(1);

    // Without the header every submission counts, as before: the next one is the player's second.
    const plain = await submit({ playerId, score: 100 });
    expect(plain.statusCode, plain.body).toBe(201);
    expect(plain.headers["idempotency-replayed"]).toBeUndefined();
    expect((plain.json() as { statsJob: string }).statsJob).not.toBe(firstJob);
    expect(await submissions(playerId)).toBe(2);
    const again = await submit({ playerId, score: 100 });
    expect(again.statusCode, again.body).toBe(201);
    expect(await submissions(playerId)).toBe(3);
  });

  it("answers 422 to the key sent with another body, and counts nothing for it", async () => {
    const playerId = newPlayer();
    const key = randomUUID();
    const first = await submit({ playerId, score: 5 }, { "idempotency-key": key });
    expect(first.statusCode, first.body).toBe(201);
    for (const other of [
      { playerId, score: 6 },
      { playerId, score: 5, name: "Renamed" },
      { playerId: newPlayer(), score: 5 },
    ]) {
      const res = await submit(other, { "idempotency-key": key });
      expect(res.statusCode, res.body).toBe(422);
      expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect((res.json() as { detail: string }).detail).toMatch(/Idempotency-Key.*another request/);
    }
    expect(await submissions(playerId)).toBe(1);
    const board = await app.inject({
      method: "GET",
      url: `/v1/leaderboards/all/players/${playerId}`,
      headers: { "x-api-key": keyA },
    });
    expect((board.json() as { player: { score: number } }).player.score).toBe(5);
  });

  it("counts 10 concurrent duplicates once: one 201 that ran, the rest 409 (Retry-After) or its replay", async () => {
    const playerId = newPlayer();
    const key = randomUUID();
    const all = await Promise.all(
      Array.from({ length: 10 }, () => submit({ playerId, score: 42 }, { "idempotency-key": key })),
    );
    const ran = all.filter((r) => r.statusCode === 201 && r.headers["idempotency-replayed"] === undefined);
    expect(ran).toHaveLength(1);
    for (const res of all) {
      if (res === ran[0]) continue;
      if (res.statusCode === 409) {
        expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
        expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
      } else {
        expect(res.statusCode, res.body).toBe(201);
        expect(res.headers["idempotency-replayed"]).toBe("true");
        expect(res.body).toBe(ran[0]?.body);
      }
    }
    expect(await submissions(playerId)).toBe(1);
    // Once the first answered, a retry is its replay.
    const later = await submit({ playerId, score: 42 }, { "idempotency-key": key });
    expect(later.headers["idempotency-replayed"]).toBe("true");
    expect(later.body).toBe(ran[0]?.body);
    expect(await submissions(playerId)).toBe(1);
  });

  it("scopes keys per API key: another client's key neither replays nor blocks", async () => {
    const key = randomUUID();
    const playerA = newPlayer();
    const playerB = newPlayer();
    const a = await submit({ playerId: playerA, score: 1 }, { "idempotency-key": key }, keyA);
    expect(a.statusCode, a.body).toBe(201);
    // The same key from another API key: another body is no conflict, and the same body runs again (no replay).
    const b = await submit({ playerId: playerB, score: 2 }, { "idempotency-key": key }, keyB);
    expect(b.statusCode, b.body).toBe(201);
    expect(b.headers["idempotency-replayed"]).toBeUndefined();
    const bSame = await submit({ playerId: playerA, score: 1 }, { "idempotency-key": `${key}-2` }, keyB);
    expect(bSame.statusCode, bSame.body).toBe(201);
    const bA = await submit({ playerId: playerA, score: 1 }, { "idempotency-key": key }, keyB);
    expect(bA.statusCode, bA.body).toBe(422);
    expect(await submissions(playerA)).toBe(2);
    // Each client's own retry replays its own first answer.
    const aRetry = await submit({ playerId: playerA, score: 1 }, { "idempotency-key": key }, keyA);
    expect(aRetry.headers["idempotency-replayed"]).toBe("true");
    expect(aRetry.body).toBe(a.body);
    const bRetry = await submit({ playerId: playerB, score: 2 }, { "idempotency-key": key }, keyB);
    expect(bRetry.headers["idempotency-replayed"]).toBe("true");
    expect(bRetry.body).toBe(b.body);
    expect(await submissions(playerA)).toBe(2);
    expect(await submissions(playerB)).toBe(1);
  });

  it("refuses malformed keys with a 400 that counts nothing, and accepts 255 printable characters", async () => {
    const playerId = newPlayer();
    for (const bad of ["", "k".repeat(256), "caf\u00e9", "a\tb"]) {
      const res = await submit({ playerId, score: 7 }, { "idempotency-key": bad });
      expect(res.statusCode, `${JSON.stringify(bad)}: ${res.body}`).toBe(400);
      expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect((res.json() as { detail: string }).detail).toMatch(/Idempotency-Key must be one header of 1–255/);
    }
    // Two header lines (joined into "a, b" by Node) are not one key.
    const twice = await app.inject({
      method: "POST",
      url: "/v1/scores",
      headers: { "x-api-key": keyA, "content-type": "application/json", "idempotency-key": ["a", "b"] },
      payload: JSON.stringify({ playerId, score: 7 }),
    });
    expect(twice.statusCode, twice.body).toBe(400);
    expect(await submissions(playerId)).toBeNull();
    const longest = `${"~".repeat(120)} {}"${"!".repeat(131)}`;
    expect(longest).toHaveLength(255);
    const ok = await submit({ playerId, score: 7 }, { "idempotency-key": longest });
    expect(ok.statusCode, ok.body).toBe(201);
    const replay = await submit({ playerId, score: 7 }, { "idempotency-key": longest });
    expect(replay.headers["idempotency-replayed"]).toBe("true");
    expect(await submissions(playerId)).toBe(1);
  });

  it("documents the header in the OpenAPI document of /docs", async () => {
    const res = await app.inject({ method: "GET", url: "/docs/json" });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as {
      paths: Record<string, { post?: { parameters?: Array<{ in: string; name: string; description?: string }> } }>;
    };
    const header = doc.paths["/v1/scores"]?.post?.parameters?.find(
      (p) => p.in === "header" && p.name === "idempotency-key",
    );
    expect(header?.description).toMatch(/Idempotency-Replayed/);
  });
});

describe("demo POST /v1/scores Idempotency-Key while the first request runs", () => {
  it("answers 409 (Retry-After) to a retry and 422 to another body; a failed first request stores no answer", async () => {
    // A second replica reaches Redis through a proxy: its request is cut off right after it claimed the key.
    const proxy = await startProxy({ target: inject("coordisRedisUrl") });
    const redis = connect(inject("coordisRedisUrl"));
    const config = loadConfig({
      REDIS_URL: proxy.url,
      COORDIS_PREFIX: prefix,
      REPLICA_ID: "idem-cut",
      RATE_LIMIT_BURST: "1000000",
      RATE_LIMIT_DAILY: "1000000000",
      LOG_LEVEL: "silent",
    });
    const cut = await buildApp(config, { jobs: false, registry: new Registry() });
    try {
      const playerId = newPlayer();
      const key = randomUUID();
      const record = `${prefix}:idempotency:{key:${keyA.split(".")[0]}:${createHash("sha256").update(key).digest("hex")}}`;
      // Replies take 500 ms back, so the blackhole below swallows the claim's reply: the request never goes on.
      proxy.setLatency(500);
      const first = cut.inject({
        method: "POST",
        url: "/v1/scores",
        headers: { "x-api-key": keyA, "content-type": "application/json", "idempotency-key": key },
        payload: JSON.stringify({ playerId, score: 9 }),
      });
      await waitUntil("the first request to claim its key", async () => (await redis.exists(record)) === 1);
      proxy.blackhole();

      const retry = await submit({ playerId, score: 9 }, { "idempotency-key": key });
      expect(retry.statusCode, retry.body).toBe(409);
      expect(retry.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(retry.headers["retry-after"]).toBe("1");
      expect((retry.json() as { detail: string }).detail).toMatch(/still in progress/);
      const other = await submit({ playerId, score: 10 }, { "idempotency-key": key });
      expect(other.statusCode, other.body).toBe(422);

      // The cut-off request times out (503), and its answer is not kept: a retry is no replay of it. It could not
      // free its key either (Redis was out of reach), so the key stays blocked until its marker expires.
      const cutOff = await first;
      expect(cutOff.statusCode, cutOff.body).toBe(503);
      const after = await submit({ playerId, score: 9 }, { "idempotency-key": key });
      expect(after.statusCode, after.body).toBe(409);
      expect(await redis.pttl(record)).toBeGreaterThan(0);
      expect(await redis.pttl(record)).toBeLessThanOrEqual(30_000);
    } finally {
      proxy.setLatency(0);
      proxy.heal();
      await cut.close();
      await proxy.close();
      redis.disconnect();
    }
  });
});
