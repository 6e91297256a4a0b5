import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import { loadConfig } from "@coordis/demo";
import { eventually, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inProcessReplicas } from "./in-process.js";
import { DEMO_WAIT, openSse } from "./replicas.js";

// A demanding client against two replicas (app instances listening on real ports) sharing one Redis of their own,
// restarted by the last test: odd but plausible input must be a clear 4xx that stores nothing, or be stored as sent;
// the admin token must work as HTTP clients send it; two admins retrying one dead letter at once retry it once; and
// top-10 events keep reaching open streams after Redis restarts without its data.
const token = "review4-admin-token";
let redis: RedisServer;
let apps: FastifyInstance[] = [];
let urls: string[] = [];

beforeAll(async () => {
  redis = await startRedis({ leastPrivilege: true });
  const prefix = testPrefix("demo-review4");
  const replicas = await inProcessReplicas(["a1", "a2"], {
    REDIS_URL: redis.url,
    COORDIS_PREFIX: prefix,
    ADMIN_TOKEN: token,
  });
  apps = replicas.apps;
  urls = replicas.urls;
});

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await redis?.stop();
});

const send = (base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
const entries = async (base: string, path: string) =>
  ((await (await send(base, "GET", path)).json()) as { entries: Array<{ playerId: string; name?: string }> }).entries;

describe("demo under adversarial input", () => {
  it("takes the admin token under any case of the Bearer scheme (RFC 9110: schemes are case-insensitive)", async () => {
    for (const authorization of [`bearer ${token}`, `BEARER ${token}`, `Bearer   ${token}`]) {
      const res = await send(urls[0] as string, "POST", "/v1/admin/keys", undefined, { authorization });
      expect(res.status, authorization).toBe(201);
    }
    for (const authorization of [`Bearer${token}`, `Basic ${token}`, `bearer ${token}x`]) {
      const res = await send(urls[0] as string, "POST", "/v1/admin/keys", undefined, { authorization });
      expect(res.status, authorization).toBe(401);
    }
  });

  it("refuses a name it could not store or show as sent (lone surrogate, C1 control, all invisible) and stores nothing of it", async () => {
    const base = urls[0] as string;
    // Raw JSON: a lone surrogate is valid JSON text, but not Unicode; Redis would get U+FFFD in its place.
    // A name of nothing but spaces or invisible characters (zero-width space, joiner, BOM) would show as a blank row.
    const invisible = ['"   "', '"\\u200b"', '"\\u200d\\ufeff"', '"\\u3000\\u2028"'];
    for (const [i, raw] of ['"\\ud800x"', '"x\\udfff"', '"a\\u0085b"', '"\\u009b31m"', ...invisible].entries()) {
      const id = `odd-name-${i}`;
      const submit = await send(base, "POST", "/v1/scores", `{"playerId":"${id}","score":5,"name":${raw}}`);
      expect(submit.status, raw).toBe(400);
      expect(submit.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(((await submit.json()) as { detail: string }).detail).toMatch(/name/);
      expect((await send(base, "GET", `/v1/players/${id}`)).status).toBe(404);
    }
    // A rename with such a name is refused the same way and leaves the name as it was.
    expect((await send(base, "POST", "/v1/scores", { playerId: "odd-rename", score: 5, name: "Ok" })).status).toBe(201);
    expect((await send(base, "PUT", "/v1/players/odd-rename", '{"name":"\\udc00"}')).status).toBe(400);
    const kept = (await (await send(urls[1] as string, "GET", "/v1/players/odd-rename")).json()) as { name: string };
    expect(kept.name).toBe("Ok");
  });

  it("stores unicode names exactly as sent, on the profile and both boards, read from another replica", async () => {
    // 40 characters are 40 code points: 40 dice are 80 UTF-16 units and fit.
    const names = ["Zoë Ångström", "the 👨‍👩‍👧‍👦 team", "名前は長い", "a\u202eb", "🎲".repeat(40)];
    for (const [i, name] of names.entries()) {
      const id = `uni-${i}`;
      expect(
        (await send(urls[0] as string, "POST", "/v1/scores", { playerId: id, score: 1000 + i, name })).status,
      ).toBe(201);
      const profile = (await (await send(urls[1] as string, "GET", `/v1/players/${id}`)).json()) as { name: string };
      expect(profile.name).toBe(name);
      for (const period of ["all", "daily"]) {
        const board = await entries(urls[1] as string, `/v1/leaderboards/${period}/top?n=100`);
        expect(board.find((e) => e.playerId === id)?.name).toBe(name);
      }
    }
  });

  it("refuses player ids no URL can address again ('.' and '..' are path segments clients remove)", async () => {
    for (const playerId of [".", ".."]) {
      const res = await send(urls[0] as string, "POST", "/v1/scores", { playerId, score: 1 });
      expect(res.status, playerId).toBe(400);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/playerId/);
    }
    const board = await entries(urls[0] as string, "/v1/leaderboards/all/top?n=100");
    expect(board.filter((e) => /^\.+$/.test(e.playerId))).toEqual([]);
    // Other ids with dots stay valid.
    expect((await send(urls[0] as string, "POST", "/v1/scores", { playerId: "...", score: 1 })).status).toBe(201);
    expect((await send(urls[0] as string, "POST", "/v1/scores", { playerId: "a.b", score: 1 })).status).toBe(201);
  });

  it("answers what it cannot read (compressed bodies, requests Node's parser refuses) with a clear problem+json", async () => {
    // A gzip-compressed body is not JSON the service can read: a 415 that names the encoding, and nothing stored.
    const zipped = await fetch(`${urls[0]}/v1/scores`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: gzipSync(JSON.stringify({ playerId: "zipped", score: 1 })),
    });
    expect(zipped.status).toBe(415);
    expect(((await zipped.json()) as { detail: string }).detail).toMatch(/Content-Encoding/);
    expect((await send(urls[1] as string, "GET", "/v1/players/zipped")).status).toBe(404);

    const { port } = new URL(urls[0] as string);
    // What the server writes before it closes the connection, to a request sent as raw bytes.
    const raw = (request: string) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), "127.0.0.1", () => socket.write(request));
        let answer = "";
        socket.setEncoding("latin1");
        socket.on("data", (chunk: string) => {
          answer += chunk;
        });
        socket.on("close", () => resolve(answer));
        socket.on("error", () => resolve(answer));
      });
    const cases: Array<[string, number]> = [
      [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431],
      ["GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400],
      ["POST /v1/scores HTTP/1.1\r\nHost: x\r\nContent-Length: five\r\n\r\n", 400],
    ];
    for (const [request, status] of cases) {
      const answer = await raw(request);
      const [head = "", body = ""] = answer.split("\r\n\r\n");
      expect(head, request.slice(0, 60)).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(head.toLowerCase()).toContain("content-type: application/problem+json");
      expect(JSON.parse(body)).toMatchObject({ type: "about:blank", status, title: expect.any(String) });
    }
  });

  it("retries a dead letter once when admins on two replicas retry it at the same moment", async () => {
    const player = `review4-dead-${Date.now()}`;
    const res = await send(urls[0] as string, "POST", "/v1/scores", { playerId: player, score: 3, name: "poison" });
    expect(res.status).toBe(201);
    const job = ((await res.json()) as { statsJob: string }).statsJob;
    await eventually(
      `${job} in the dead letters`,
      async () => {
        const view = (await (await send(urls[1] as string, "GET", "/v1/queue")).json()) as {
          deadLetters: Array<{ id: string }>;
        };
        return view.deadLetters.some((d) => d.id === job) ? true : undefined;
      },
      DEMO_WAIT,
    );
    expect((await send(urls[1] as string, "PUT", `/v1/players/${player}`, { name: "cured" })).status).toBe(200);
    const path = `/v1/admin/queue/dead/${encodeURIComponent(job)}/retry`;
    const auth = { authorization: `Bearer ${token}` };
    const answers = await Promise.all(
      [0, 1, 0, 1].map(async (i) => (await send(urls[i] as string, "POST", path, undefined, auth)).status),
    );
    expect(answers.sort()).toEqual([204, 404, 404, 404]);
    const audit = (await (await send(urls[0] as string, "GET", "/v1/audit?limit=100")).json()) as {
      entries: Array<{ data: { type: string; jobId?: string } }>;
    };
    expect(audit.entries.filter((e) => e.data.type === "job-retried" && e.data.jobId === job)).toHaveLength(1);
    const stats = await eventually(
      "the retried job's stats",
      async () =>
        ((await (await send(urls[1] as string, "GET", `/v1/players/${player}`)).json()) as { stats: unknown }).stats ??
        undefined,
      DEMO_WAIT,
    );
    expect(stats).toMatchObject({ submissions: 1, best: 3 });
  });

  it("keeps delivering top-10 events to an open stream of another replica after Redis restarts without its data", async () => {
    const stream = await openSse(`${urls[1]}/v1/events`);
    try {
      await stream.next((e) => e.event === "hello");
      await redis.kill();
      await redis.restart();
      for (const app of apps) {
        await waitUntil(
          "the replica to reach Redis again",
          async () => (await app.inject("/readyz")).statusCode === 200,
          {
            ...DEMO_WAIT,
            timeoutMs: 20_000,
          },
        );
      }
      const player = `review4-after-restart-${Date.now()}`;
      // The stream is a live view: an event published before the replica's subscription is back may be missed, so
      // the score is submitted again (each a new best, so each publishes) until one arrives.
      let score = 1;
      await eventually(
        "a top-10 event from the other replica",
        async () => {
          await send(urls[0] as string, "POST", "/v1/scores", { playerId: player, score: score++ });
          return stream.events.find((e) => e.event === "top10" && (e.data as { playerId: string }).playerId === player);
        },
        { ...DEMO_WAIT, intervalMs: 200 },
      );
    } finally {
      stream.close();
    }
  });
});

describe("demo configuration sent in headers", () => {
  it("refuses at start an ADMIN_TOKEN or REPLICA_ID that a header cannot carry intact", () => {
    // Header values lose surrounding whitespace, carry no control characters, and arrive byte by byte (a UTF-8
    // token sent by curl reads as Latin-1): such a token would lock the admin out with nothing but 401s.
    for (const value of [" padded", "padded ", "tab\there", "new\nline", "pässwörd-token"]) {
      expect(() => loadConfig({ ADMIN_TOKEN: value }), JSON.stringify(value)).toThrow(/^ADMIN_TOKEN must be/);
    }
    for (const value of ["s3cr3t!@#$%^&*()", "two words", "base64url_-token="]) {
      expect(loadConfig({ ADMIN_TOKEN: value }).adminToken).toBe(value);
    }
    // Every answer carries the replica id in x-replica-id: one Node cannot send made every request a 500.
    for (const value of ["東京-1", "a\tb", "x".repeat(101)]) {
      expect(() => loadConfig({ REPLICA_ID: value }), JSON.stringify(value)).toThrow(/^REPLICA_ID must be/);
    }
    expect(loadConfig({ REPLICA_ID: "eu-west r1" }).replicaId).toBe("eu-west r1");
  });
});
