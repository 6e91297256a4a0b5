import type { RedisClient } from "@coordis/core";
import { type RedisServer, startRedis } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BASE_JOB, type ParsedJob } from "../src/options.js";
import { packRecord } from "../src/record.js";

// The record a Queue packs for the add script must be the bytes Redis' own cmsgpack.pack writes for the same fields:
// every script reads records with cmsgpack.unpack, and records written by earlier versions were packed by Redis.
const PACK = `return cmsgpack.pack({ 'w', 0, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9], 0 })`;

describe("job records packed by the client", () => {
  let server: RedisServer;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    admin = server.adminClient();
  });
  afterAll(async () => {
    await server.stop();
  });

  const sizes = [0, 1, 31, 32, 255, 256, 65_535, 65_536, 70_000];
  const numbers = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, 604_800_000, 2 ** 52];

  it("equal Redis' cmsgpack.pack byte for byte, for every size class of numbers, group and data (UTF-8 included)", async () => {
    const cases: Array<[ParsedJob, string]> = [];
    for (const n of numbers) {
      cases.push([{ ...BASE_JOB, attempts: n, backoffDelayMs: n, backoffMaxMs: n, resultTtlMs: n }, "{}"]);
    }
    for (const size of sizes) {
      cases.push([{ ...BASE_JOB, group: "g".repeat(Math.min(size, 256)) }, "x".repeat(size)]);
      cases.push([{ ...BASE_JOB, priority: 9, backoffType: 1, jitter: 1000 }, "é".repeat(size / 2)]);
    }
    for (const [job, data] of cases) {
      const expected = (await admin.callBuffer(
        "EVAL",
        PACK,
        "0",
        job.attempts,
        job.backoffType,
        job.backoffDelayMs,
        job.backoffMaxMs,
        job.jitter,
        job.resultTtlMs,
        job.priority,
        job.group,
        data,
      )) as Buffer;
      expect(packRecord(job, data).equals(expected), `${JSON.stringify(job)} / ${data.length}`).toBe(true);
    }
  });
});
