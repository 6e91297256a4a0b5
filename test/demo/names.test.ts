import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type InProcessReplicas, inProcessReplicas } from "./in-process.js";

// A player's name under concurrent requests on two replicas (two app instances listening on real ports, one Redis,
// the least-privilege user): a first submission without a name never replaces the name a concurrent one carried,
// and the profile and the leaderboards end with the same name whatever order the requests interleave in.
const prefix = testPrefix("demo-names");
const TRIALS = 40;
let urls: string[] = [];

let replicas: InProcessReplicas | undefined;

beforeAll(async () => {
  replicas = await inProcessReplicas(["n1", "n2"], { REDIS_URL: inject("coordisRedisUrl"), COORDIS_PREFIX: prefix });
  urls = replicas.urls;
});

afterAll(() => replicas?.close());

const send = async (base: string, method: string, path: string, body: unknown) => {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBeLessThan(300);
};
const submit = (base: string, body: { playerId: string; score: number; name?: string }) =>
  send(base, "POST", "/v1/scores", body);

/** The player's name on its profile and on both boards, read from the second replica. */
async function names(id: string): Promise<{ profile: string; all: string; daily: string }> {
  const read = async (path: string) => {
    const res = await fetch(`${urls[1]}${path}`);
    expect(res.status, path).toBe(200);
    return res.json() as Promise<{ name: string; player: { name: string } }>;
  };
  const [profile, all, daily] = await Promise.all([
    read(`/v1/players/${id}`),
    read(`/v1/leaderboards/all/players/${id}?radius=0`),
    read(`/v1/leaderboards/daily/players/${id}?radius=0`),
  ]);
  return { profile: profile.name, all: all.player.name, daily: daily.player.name };
}

/** Runs `a` and `b` at once, the one or the other sent first. */
const race = (trial: number, a: () => Promise<void>, b: () => Promise<void>) =>
  Promise.all(trial % 2 === 0 ? [a(), b()] : [b(), a()]);

describe("demo player names under concurrent requests", () => {
  it("keeps the name a first submission carried when one without a name races it, on the profile and the boards", async () => {
    const lost: string[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const id = `first-${trial}`;
      await race(
        trial,
        () => submit(urls[0] as string, { playerId: id, score: 10, name: "Named" }),
        () => submit(urls[1] as string, { playerId: id, score: 5 }),
      );
      const seen = await names(id);
      if (seen.profile !== "Named" || seen.all !== "Named" || seen.daily !== "Named") {
        lost.push(`${id}: ${JSON.stringify(seen)}`);
      }
    }
    expect(lost, `the name was lost in ${lost.length} of ${TRIALS} trials`).toEqual([]);
  });

  it("ends with one name on the profile and the boards when two names race (first submissions and renames)", async () => {
    const differ: string[] = [];
    const check = async (id: string, candidates: string[]) => {
      const seen = await names(id);
      if (!candidates.includes(seen.profile) || seen.all !== seen.profile || seen.daily !== seen.profile) {
        differ.push(`${id}: ${JSON.stringify(seen)}`);
      }
    };
    for (let trial = 0; trial < TRIALS; trial++) {
      const id = `two-${trial}`;
      await race(
        trial,
        () => submit(urls[0] as string, { playerId: id, score: 10, name: "Alice" }),
        () => submit(urls[1] as string, { playerId: id, score: 5, name: "Bob" }),
      );
      await check(id, ["Alice", "Bob"]);
      // A rename racing a named submission of the same player.
      await race(
        trial,
        () => send(urls[0] as string, "PUT", `/v1/players/${id}`, { name: "Carol" }),
        () => submit(urls[1] as string, { playerId: id, score: 7, name: "Dave" }),
      );
      await check(id, ["Carol", "Dave"]);
    }
    expect(differ, `profile and boards differ in ${differ.length} of ${2 * TRIALS} races`).toEqual([]);
  });
});
