import { performance } from "node:perf_hooks";
import {
  connect,
  DurabilityError,
  parseDurability,
  type RedisClient,
  runScriptDurable,
  serverAtLeast,
  serverInfo,
} from "@coordis/core";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { counter } from "./fixtures/test-scripts.js";

const prefix = testPrefix();

/**
 * Makes `redis` read, while `newer()` holds, the INFO a Redis 7.2 server answers: the server it reached before a
 * failover (or before a rolling upgrade was rolled back). The suite's servers run Redis 7.0, which has no WAITAOF;
 * every command but INFO goes to the real one.
 */
function seenAs72(redis: RedisClient, newer: () => boolean): void {
  const real = redis.info.bind(redis) as (...args: unknown[]) => Promise<string>;
  (redis as unknown as { info: (...args: unknown[]) => Promise<string> }).info = (...args) =>
    newer() ? Promise.resolve("# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\n") : real(...args);
}

describe("the server version Coordis checks features against follows the server a client reaches", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    for (const c of clients.splice(0)) c.disconnect();
  });
  afterAll(async () => {
    await server.stop();
  });

  function client(): RedisClient {
    const c = connect(server.url);
    clients.push(c);
    return c;
  }

  it("WAITAOF refused as unknown: the version is read again, and 'if-supported' uses WAIT from the next call on", async () => {
    const redis = client();
    let before = true;
    seenAs72(redis, () => before);
    expect(await serverAtLeast(redis, "7.2.0")).toBe(true);
    before = false; // the client now reaches a Redis 7.0 (a failover to a replica not upgraded yet)
    const script = counter("refresh-if-supported");
    const durability = parseDurability("durability", { replicas: 0, aof: "if-supported", timeoutMs: 100 });
    const key = `${prefix}:if-supported`;
    const first = await runScriptDurable(redis, script, [key], [], durability);
    expect(first.error).toBeInstanceOf(DurabilityError);
    expect(first.error).toMatchObject({ reason: "failed" });
    expect(String((first.error as DurabilityError).message)).toMatch(/unknown command/i);
    const second = await countCommands(server, () => runScriptDurable(redis, script, [key], [], durability));
    expect(second.result.error).toBeUndefined();
    expect(second.result.reply).toBe(2);
    expect(second.sent).toMatchObject({ wait: 1 });
    expect(second.sent.waitaof).toBeUndefined();
    expect((await serverInfo(redis)).version).not.toBe("7.2.4");
  });

  it("WAITAOF refused as unknown: with aof: true the next call rejects as 'unsupported', nothing sent", async () => {
    const redis = client();
    let before = true;
    seenAs72(redis, () => before);
    expect(await serverAtLeast(redis, "7.2.0")).toBe(true);
    before = false;
    const script = counter("refresh-required");
    const durability = parseDurability("durability", { replicas: 0, aof: true, timeoutMs: 100 });
    const key = `${prefix}:required`;
    const first = await runScriptDurable(redis, script, [key], [], durability);
    expect(first.error).toMatchObject({ reason: "failed" });
    const second = await countCommands(server, () =>
      runScriptDurable(redis, script, [key], [], durability).catch((e: unknown) => e),
    );
    expect(second.result).toBeInstanceOf(DurabilityError);
    expect(second.result).toMatchObject({ reason: "unsupported" });
    expect(second.sent.evalsha ?? 0).toBe(0);
    expect(second.sent.eval ?? 0).toBe(0);
    expect(Number(await redis.get(key))).toBe(1);
  });

  it("an old reading is read again (a server upgraded behind a client): aof: true works once the version allows", async () => {
    const redis = client();
    let newer = false;
    seenAs72(redis, () => newer);
    expect(await serverAtLeast(redis, "7.2.0")).toBe(false);
    newer = true; // the server was upgraded since
    // Within a minute the earlier reading stands.
    expect(await serverAtLeast(redis, "7.2.0")).toBe(false);
    const realNow = performance.now.bind(performance);
    vi.spyOn(performance, "now").mockImplementation(() => realNow() + 61_000);
    expect(await serverAtLeast(redis, "7.2.0")).toBe(true);
  });
});
