import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, type RedisClient } from "@coordis/core";
import { Leaderboard, periodBucket } from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import { beforeAll, describe, expect, inject, it } from "vitest";

const worker = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "submitter.ts");
const prefix = testPrefix();
const WORKERS = 4;
const PER_WORKER = 200;

function runWorker(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=@coordis/source", "--import", "tsx", worker, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`worker exited ${code}: ${err}`))));
  });
}

describe("concurrent submits from several processes to one hot member", () => {
  const urls = () => [inject("coordisRedisUrl"), inject("coordisClusterUrl")];
  let outputs: string[];
  let crossedMidnight = false;
  beforeAll(async () => {
    const started = Date.now();
    outputs = await Promise.all(
      Array.from({ length: WORKERS }, (_, w) => runWorker([prefix, String(PER_WORKER), String(w + 1), ...urls()])),
    );
    crossedMidnight = periodBucket("daily", started).id !== periodBucket("daily", Date.now()).id;
  });

  it("every worker finished", () => {
    expect(outputs).toEqual(Array(WORKERS).fill(`done ${PER_WORKER}`));
  });

  // The model: increment adds 1..n in every worker; best keeps the maximum of seed * 1000 + i.
  const want = {
    best: WORKERS * 1000 + PER_WORKER - 1,
    increment: (WORKERS * PER_WORKER * (PER_WORKER + 1)) / 2,
  };
  it.each([
    ["standalone", "best"],
    ["standalone", "increment"],
    ["cluster", "best"],
    ["cluster", "increment"],
  ] as const)("%s / %s: the final state equals the model (no lost updates)", async (topology, update) => {
    const redis: RedisClient = connect(
      topology === "standalone" ? inject("coordisRedisUrl") : inject("coordisClusterUrl"),
    );
    try {
      const lb = new Leaderboard(redis, `c-${update}`, { prefix, update, periods: ["all", "daily"] });
      expect(await lb.rank("hot", { period: "all" })).toMatchObject({ score: want[update], rank: 1, count: 1 });
      // The daily board saw the same submits unless the run crossed midnight (then they split over two days).
      if (!crossedMidnight) {
        expect(await lb.rank("hot", { period: "daily" })).toMatchObject({ score: want[update], rank: 1, count: 1 });
      }
    } finally {
      redis.disconnect();
    }
  });
});
