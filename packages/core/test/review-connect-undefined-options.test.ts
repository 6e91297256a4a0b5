import { clientSafetyProblems, connect, DEFAULT_COMMAND_TIMEOUT_MS } from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { describe, expect, it } from "vitest";

/** Settings an application reads from its configuration, none of them set (the usual case). */
const config: { commandTimeout?: number; resend?: boolean; retryDelay?: number; refreshMs?: number } = {};

// ioredis reads an option whose value is undefined as not given. connect() spread the caller's redisOptions and
// clusterOptions over its own settings, so `{ commandTimeout: config.commandTimeout }` with nothing configured took
// the command timeout away, and `autoResendUnfulfilledCommands: undefined` turned re-sending of unanswered commands
// back on (ioredis' default): a client from connect() that assertSafeClient refuses.
describe("connect() options set to undefined keep Coordis' settings", () => {
  it("a standalone client keeps its command timeout and never re-sends", () => {
    const client = connect("redis://127.0.0.1:1", {
      redisOptions: {
        lazyConnect: true,
        commandTimeout: config.commandTimeout,
        autoResendUnfulfilledCommands: config.resend,
      },
    }) as Redis;
    try {
      expect(client.options.commandTimeout).toBe(DEFAULT_COMMAND_TIMEOUT_MS);
      expect(client.options.autoResendUnfulfilledCommands).toBe(false);
      expect(clientSafetyProblems(client)).toEqual([]);
    } finally {
      client.disconnect();
    }
  });

  it("a Cluster client keeps its no-re-send settings, on the cluster and on its nodes", () => {
    const client = connect("redis+cluster://127.0.0.1:1", {
      clusterOptions: {
        lazyConnect: true,
        retryDelayOnFailover: config.retryDelay,
        retryDelayOnClusterDown: config.retryDelay,
        slotsRefreshInterval: config.refreshMs,
        redisOptions: { commandTimeout: config.commandTimeout, autoResendUnfulfilledCommands: config.resend },
      },
    }) as Cluster;
    try {
      expect(client.options.retryDelayOnFailover).toBe(0);
      expect(client.options.retryDelayOnClusterDown).toBe(0);
      expect(client.options.redisOptions?.commandTimeout).toBe(DEFAULT_COMMAND_TIMEOUT_MS);
      expect(client.options.redisOptions?.autoResendUnfulfilledCommands).toBe(false);
      expect(clientSafetyProblems(client)).toEqual([]);
    } finally {
      client.disconnect();
    }
  });

  it("a value that is given still wins", () => {
    const client = connect("redis://127.0.0.1:1", { redisOptions: { lazyConnect: true, commandTimeout: 1234 } });
    try {
      expect((client as Redis).options.commandTimeout).toBe(1234);
    } finally {
      client.disconnect();
    }
  });
});
