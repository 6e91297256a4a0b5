import {
  coreScripts,
  DEADLINE_MARGIN_MS,
  FALLBACK_DEADLINE_MS,
  parseDurability,
  RedisUnavailableError,
  runScriptDurable,
} from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it, vi } from "vitest";

const prefix = testPrefix();

// A client of the user's own without commandTimeout gets Coordis' own deadline on every script call. A durable call
// with `aof` first reads the server's version (INFO), and that read had no deadline at all: against a server that
// stopped answering (a partition, a frozen host) the call never settled, nor did any serverAtLeast() of a primitive.
describe("the server-version read of a durable call on a client without commandTimeout", () => {
  const redis = proxiedServer();
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fails by Coordis' deadline when the server does not answer, instead of never settling", async () => {
    const client = new Redis({
      host: redis.proxy.host,
      port: redis.proxy.port,
      autoResendUnfulfilledCommands: false,
      ...(redis.server.user ? { username: redis.server.user.name, password: redis.server.user.password } : {}),
    });
    client.on("error", () => {});
    try {
      await client.ping();
      redis.proxy.blackhole();
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      const durability = parseDurability("durability", { replicas: 0, aof: "if-supported", timeoutMs: 100 });
      let outcome: unknown = "pending";
      runScriptDurable(
        client,
        coreScripts.probe,
        [`${prefix}:{d}:v`, `${prefix}:{d}:c`],
        ["x", 1_000],
        durability,
      ).then(
        (value) => (outcome = value),
        (err: unknown) => (outcome = err),
      );
      // Past the longest deadline a call on this client can have: its wait's timeout included.
      await vi.advanceTimersByTimeAsync(FALLBACK_DEADLINE_MS + DEADLINE_MARGIN_MS + 100 + 1);
      expect(outcome).toBeInstanceOf(RedisUnavailableError);
      expect((outcome as Error).message).toMatch(/Coordis deadline/);
    } finally {
      vi.useRealTimers();
      client.disconnect();
      redis.proxy.heal();
    }
  });
});
