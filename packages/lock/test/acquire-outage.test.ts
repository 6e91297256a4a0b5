import { connect, type RedisClient, RedisUnavailableError, ScriptError } from "@coordis/core";
import { type Lease, Mutex, Semaphore } from "@coordis/lock";
import {
  eventually,
  type FaultProxy,
  type RedisServer,
  recordObserver,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** An ioredis command as `sendCommand` gets it. */
type Command = { name: string; args: unknown[]; promise: Promise<unknown> };
/** ioredis' `sendCommand`, seen on a client instance. */
type Sender = { sendCommand(command: Command, ...rest: unknown[]): unknown };

/** Calls `seen` with every command `client` hands to its connection (written, or queued while reconnecting). */
function onCommand(client: RedisClient, seen: (command: Command) => void): void {
  const target = client as unknown as Sender;
  const original = target.sendCommand;
  target.sendCommand = function (this: unknown, command, ...rest) {
    seen(command);
    return original.call(this, command, ...rest);
  };
}

/**
 * The acquire attempts `client` sends for the lock whose fence key is `fenceKey` (the undos name no fence), counted
 * by their tokens: each attempt has its own, and a command ioredis hands over twice (queued while reconnecting, then
 * flushed) counts once.
 */
function countAcquires(client: RedisClient, fenceKey: string): { readonly sent: number } {
  const tokens = new Set<unknown>();
  onCommand(client, (command) => {
    const name = command.name.toLowerCase();
    const at = command.args.indexOf(fenceKey);
    if ((name === "evalsha" || name === "eval") && at >= 0) tokens.add(String(command.args[at + 1]));
  });
  return {
    get sent() {
      return tokens.size;
    },
  };
}

/** `pending`, its rejection as its value, and whether it has settled. */
function tracked<T>(pending: Promise<T>): { promise: Promise<T | unknown>; readonly settled: boolean } {
  const state = { settled: false, promise: undefined as unknown as Promise<T | unknown> };
  const settle = <V>(value: V): V => {
    state.settled = true;
    return value;
  };
  state.promise = pending.then(settle, settle);
  return state;
}

/** How long the client may take to reconnect after the proxy heals. */
const RECOVERY = { timeoutMs: 8_000, intervalMs: 20, ignoreErrors: true };

/** A Mutex and a Semaphore of one name on `client`, with the keys to look at from outside. */
function locksOn(client: RedisClient, name: string, observer: ReturnType<typeof recordObserver>, lockPrefix = prefix) {
  return [
    {
      lock: new Mutex(client, name, { prefix: lockPrefix, ttlMs: 30_000, observer }),
      key: `${lockPrefix}:lock:{${name}}`,
      holders: (admin: RedisClient, key: string) => admin.get(key).then((t) => (t === null ? [] : [t])),
    },
    {
      lock: new Semaphore(client, name, { prefix: lockPrefix, permits: 1, ttlMs: 30_000, observer }),
      key: `${lockPrefix}:sem:{${name}}`,
      holders: (admin: RedisClient, key: string) => admin.zrange(key, "0", "-1"),
    },
  ];
}

describe("acquire() while its Redis does not answer waits out the outage, up to waitMs", () => {
  let server: RedisServer;
  let admin: RedisClient;
  let proxy: FaultProxy | undefined;
  let client: RedisClient | undefined;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    admin = server.adminClient();
    await admin.ping();
  });
  afterEach(async () => {
    client?.disconnect();
    await proxy?.close();
    client = undefined;
    proxy = undefined;
  });
  afterAll(async () => {
    await server.stop();
  });

  /** A client through a fresh fault proxy, with a short command timeout. */
  async function viaProxy(commandTimeoutMs = 200): Promise<{ proxy: FaultProxy; client: RedisClient }> {
    proxy = await startProxy({ target: server });
    client = connect(proxy.url, { commandTimeoutMs });
    client.on("error", () => {});
    await client.ping();
    return { proxy, client };
  }

  it("a cut shorter than waitMs: the waiter gets the lease once Redis is back, with a higher fence", async () => {
    const { proxy, client } = await viaProxy();
    const rec = recordObserver();
    for (const { lock, key, holders } of locksOn(client, "short-cut", rec)) {
      const earlier = await lock.acquire();
      await earlier.release();
      const acquires = countAcquires(client, `${key}:fence`);
      proxy.blackhole();
      const outcome = tracked(lock.acquire({ waitMs: 20_000 }));
      // The first attempt got no answer and the waiter tried again: the cut ends now.
      await waitUntil(`${key}: a retry sent during the cut`, () => acquires.sent >= 2 || outcome.settled, 10_000);
      proxy.heal();
      const result = await outcome.promise;
      expect(result, key).not.toBeInstanceOf(Error);
      const lease = result as Lease;
      expect(lease.fence, key).toBeGreaterThan(earlier.fence);
      expect(await holders(admin, key), key).toEqual([lease.token]);
      const report = rec.ops.at(-1);
      expect(report?.outcome, key).toBe("acquired");
      expect(report?.attributes?.attempts, key).toBe(acquires.sent);
      expect(acquires.sent, key).toBeGreaterThanOrEqual(2);
      expect(await lease.release(), key).toBe(true);
    }
  });

  it("a cut longer than waitMs: RedisUnavailableError saying Redis did not answer, after retrying the whole wait", async () => {
    const { proxy, client } = await viaProxy();
    const rec = recordObserver();
    for (const { lock, key } of locksOn(client, "long-cut", rec)) {
      const acquires = countAcquires(client, `${key}:fence`);
      proxy.blackhole();
      const err = await lock.acquire({ waitMs: 1_000 }).catch((e: unknown) => e);
      expect(err, key).toBeInstanceOf(RedisUnavailableError);
      expect((err as Error).message, key).toMatch(/did not answer/);
      expect((err as Error).message, key).toMatch(/waitMs/);
      // The last attempt's own error is kept as the cause.
      expect((err as Error).cause, key).toBeInstanceOf(RedisUnavailableError);
      const report = rec.ops.at(-1);
      expect(report?.outcome, key).toBe("error");
      // Every attempt was sent, and each retry came after the one before had failed.
      expect(acquires.sent, key).toBeGreaterThanOrEqual(2);
      expect(report?.attributes?.attempts, key).toBe(acquires.sent);
      proxy.heal();
      // Nothing reached Redis during the cut: the lock is free once the client is back.
      const lease = await eventually(`${key}: free after the cut`, () => lock.tryAcquire(), RECOVERY);
      expect(await lease.release(), key).toBe(true);
    }
  });

  it("a lock found busy, then Redis silent until waitMs: RedisUnavailableError naming the last unanswered attempts", async () => {
    const { proxy, client } = await viaProxy();
    const direct = server.client();
    const rec = recordObserver();
    try {
      for (const { lock, key } of locksOn(client, "busy-then-cut", rec)) {
        const holder = await (lock instanceof Mutex
          ? new Mutex(direct, "busy-then-cut", { prefix, ttlMs: 30_000 })
          : new Semaphore(direct, "busy-then-cut", { prefix, permits: 1, ttlMs: 30_000 })
        ).acquire();
        const acquires = countAcquires(client, `${key}:fence`);
        const outcome = lock.acquire({ waitMs: 1_500 }).catch((e: unknown) => e);
        // Answered busy at least once; then the link goes silent for the rest of the wait.
        await waitUntil(`${key}: a busy answer`, () => acquires.sent >= 2, 5_000);
        proxy.blackhole();
        const err = await outcome;
        proxy.heal();
        expect(err, key).toBeInstanceOf(RedisUnavailableError);
        expect((err as Error).message, key).toMatch(/Redis did not answer its last \d+ of \d+ attempts/);
        expect(rec.ops.at(-1)?.attributes?.attempts, key).toBe(acquires.sent);
        expect(await holder.release(), key).toBe(true);
        await eventually(`${key}: the client back`, () => client.ping(), RECOVERY);
      }
    } finally {
      direct.disconnect();
    }
  });

  it("a grant whose reply was lost is not left held by nobody: it is freed and the retry gets the lock", async () => {
    const { proxy, client } = await viaProxy(500);
    const rec = recordObserver();
    for (const { lock, key, holders } of locksOn(client, "lost-reply", rec)) {
      const earlier = await lock.acquire();
      await earlier.release();
      const acquires = countAcquires(client, `${key}:fence`);
      // The request reaches Redis 150 ms after it was sent and runs; then the link goes silent, so its reply is lost.
      proxy.setLatency(150);
      const outcome = tracked(lock.acquire({ waitMs: 20_000 }));
      const [phantom, phantomFence] = await eventually(`${key}: the first attempt to run`, async () => {
        const [token] = await holders(admin, key);
        return token === undefined ? undefined : ([token, Number(await admin.get(`${key}:fence`))] as const);
      });
      proxy.blackhole();
      proxy.setLatency(0);
      expect(phantomFence, key).toBe(earlier.fence + 1);
      await waitUntil(`${key}: a retry sent after the lost reply`, () => acquires.sent >= 2 || outcome.settled, 10_000);
      proxy.heal();
      const result = await outcome.promise;
      expect(result, key).not.toBeInstanceOf(Error);
      const lease = result as Lease;
      // A retry holds it, with a later fence; the token of the lost grant holds nothing.
      expect(lease.token, key).not.toBe(phantom);
      expect(lease.fence, key).toBeGreaterThan(phantomFence);
      expect(await holders(admin, key), key).toEqual([lease.token]);
      expect(await lease.release(), key).toBe(true);
      expect(await admin.exists(key), key).toBe(0);
    }
  });

  it("an abort during the outage rejects with the abort reason, and leaves nothing held", async () => {
    const { proxy, client } = await viaProxy();
    const rec = recordObserver();
    for (const { lock, key } of locksOn(client, "abort-cut", rec)) {
      const acquires = countAcquires(client, `${key}:fence`);
      proxy.blackhole();
      const ctl = new AbortController();
      const outcome = tracked(lock.acquire({ waitMs: 20_000, signal: ctl.signal }));
      await waitUntil(`${key}: a retry sent during the cut`, () => acquires.sent >= 2 || outcome.settled, 10_000);
      const reason = new Error("shutting down");
      ctl.abort(reason);
      expect(await outcome.promise, key).toBe(reason);
      expect(rec.ops.at(-1)?.outcome, key).toBe("aborted");
      const sent = acquires.sent;
      proxy.heal();
      await eventually(`${key}: the client back`, () => client.ping(), RECOVERY);
      // The aborted waiter sent nothing more, and nothing of it is held.
      expect(acquires.sent, key).toBe(sent);
      const lease = await eventually(`${key}: free after the cut`, () => lock.tryAcquire(), RECOVERY);
      expect(await lease.release(), key).toBe(true);
    }
  });

  it("a refusal (NOPERM) still rejects at once with ScriptError: one attempt, no retry", async () => {
    const { client } = await viaProxy();
    const rec = recordObserver();
    // Keys outside the user's key pattern: Redis refuses every attempt.
    for (const { lock, key } of locksOn(client, "refused", rec, "forbidden")) {
      const acquires = countAcquires(client, `${key}:fence`);
      const err = await lock.acquire({ waitMs: 20_000 }).catch((e: unknown) => e);
      expect(err, key).toBeInstanceOf(ScriptError);
      expect((err as Error).message, key).toMatch(/NOPERM/);
      expect(acquires.sent, key).toBe(1);
      expect(rec.ops.at(-1)?.attributes?.attempts, key).toBe(1);
    }
  });

  it("waitMs: 0 and tryAcquire() make one attempt and reject with that attempt's error", async () => {
    const { proxy, client } = await viaProxy();
    const rec = recordObserver();
    for (const { lock, key } of locksOn(client, "one-attempt", rec)) {
      const acquires = countAcquires(client, `${key}:fence`);
      proxy.blackhole();
      const once = await lock.acquire({ waitMs: 0 }).catch((e: unknown) => e);
      expect(once, key).toBeInstanceOf(RedisUnavailableError);
      expect((once as Error).message, key).toMatch(/Redis is unavailable while running/);
      await expect(lock.tryAcquire(), key).rejects.toBeInstanceOf(RedisUnavailableError);
      expect(acquires.sent, key).toBe(2);
      expect(rec.ops.slice(-2).map((o) => o.attributes?.attempts)).toEqual([1, 1]);
      proxy.heal();
      await eventually(`${key}: the client back`, () => client.ping(), RECOVERY);
    }
  });

  it("a client the application disconnected while it reconnected never answers again: acquire() gives up at once", async () => {
    const { proxy, client } = await viaProxy();
    const rec = recordObserver();
    proxy.refuse();
    proxy.dropConnections();
    await waitUntil("the client to wait for its next attempt", () => client.status === "reconnecting", 5_000);
    client.disconnect(); // ioredis leaves it "reconnecting" for good
    for (const { lock, key } of locksOn(client, "disconnected", rec)) {
      const err = await lock.acquire({ waitMs: 20_000 }).catch((e: unknown) => e);
      expect(err, key).toBeInstanceOf(RedisUnavailableError);
      expect(rec.ops.at(-1)?.attributes?.attempts, key).toBe(1);
    }
    await proxy.accept();
  });
});

describe("acquire() across a restart of its Redis (appendfsync always, so fences survive)", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true, appendOnly: true, config: { appendfsync: "always" } });
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a waiter started while Redis is down gets the lease once it is back, with a higher fence", async () => {
    const client = server.client({ commandTimeoutMs: 300 });
    client.on("error", () => {});
    await client.ping();
    const admin = server.adminClient();
    await admin.ping();
    const rec = recordObserver();
    for (const { lock, key, holders } of locksOn(client, "restart", rec)) {
      const earlier = await lock.acquire();
      await earlier.release();
      const acquires = countAcquires(client, `${key}:fence`);
      await server.kill();
      const outcome = tracked(lock.acquire({ waitMs: 30_000 }));
      await waitUntil(`${key}: a retry sent while Redis is down`, () => acquires.sent >= 2 || outcome.settled, 10_000);
      await server.restart();
      const result = await outcome.promise;
      expect(result, key).not.toBeInstanceOf(Error);
      const lease = result as Lease;
      expect(lease.fence, key).toBeGreaterThan(earlier.fence);
      expect(await eventually(`${key}: admin back`, () => holders(admin, key), RECOVERY), key).toEqual([lease.token]);
      expect(rec.ops.at(-1)?.attributes?.attempts, key).toBe(acquires.sent);
      expect(await lease.release(), key).toBe(true);
    }
  });
});
