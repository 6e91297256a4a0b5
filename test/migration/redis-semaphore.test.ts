/**
 * The redis-semaphore rows of the migration table in packages/lock/README.md, checked side by side: the peer
 * (installed as a devDependency) and its Coordis mapping on the same Redis servers, same scenario.
 */
import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { DEFAULT_WAIT_MS, type Lease, LeaseLostError, LockBusyError, Mutex, Redlock, Semaphore } from "@coordis/lock";
import {
  countCommands,
  type RedisGroup,
  type RedisServer,
  startRedisGroup,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { Redis } from "ioredis";
import {
  LostLockError,
  MultiSemaphore,
  RedlockMultiSemaphore,
  RedlockMutex,
  RedlockSemaphore,
  Mutex as RsMutex,
  Semaphore as RsSemaphore,
  TimeoutError,
} from "redis-semaphore";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("rs");
let n = 0;
/** A fresh lock name per scenario. */
const fresh = () => {
  n += 1;
  return `${prefix}-job-${n}`;
};

/** A promise and the function that settles it: a test's own condition to wait on. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("migration from redis-semaphore to @coordis/lock", () => {
  let group: RedisGroup;
  let server: RedisServer;
  /** The peer's clients (one per master; the first is the single-Redis one). */
  let peers: Redis[];
  /** Coordis' clients, same masters. */
  let clients: RedisClient[];
  let redis: RedisClient;
  let peer: Redis;

  beforeAll(async () => {
    group = await startRedisGroup(3);
    server = group.servers[0] as RedisServer;
    peers = group.adminUrls.map((u) => new Redis(u, { maxRetriesPerRequest: 1 }));
    clients = group.adminUrls.map((u) => connect(u));
    peer = peers[0] as Redis;
    redis = clients[0] as RedisClient;
    await Promise.all([...peers, ...clients].map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of [...peers, ...clients]) c.disconnect();
    await group.stop();
  });

  it("every redis-semaphore name the table maps exists in 5.8, and every Coordis name with its shape", () => {
    for (const cls of [RsMutex, RsSemaphore, RedlockMutex, MultiSemaphore, RedlockSemaphore, RedlockMultiSemaphore]) {
      expect(typeof cls).toBe("function");
    }
    expect(new TimeoutError("x")).toBeInstanceOf(Error);
    expect(new LostLockError("x")).toBeInstanceOf(Error);
    const m = new RsMutex(peer, "names", {
      lockTimeout: 1_000,
      acquireTimeout: 1_000,
      acquireAttemptsLimit: 1,
      retryInterval: 10,
      refreshInterval: 0,
      onLockLost: () => {},
      identifier: "id-1",
      acquiredExternally: true,
    });
    for (const method of ["acquire", "tryAcquire", "release", "stopRefresh"] as const) {
      expect(typeof m[method], method).toBe("function");
    }
    expect(m.identifier).toBe("id-1");
    expect(m.isAcquired).toBe(false);
    // Coordis: Mutex(redis, name, opts), Semaphore(redis, name, { permits }), Redlock(masters, name, { ttlMs,
    // driftFactor, nodeTimeoutMs }); driftFactor is Redlock's alone (Mutex and Semaphore use 0.01).
    expect(new Mutex(redis, "names", { ttlMs: 1_000 }).driftFactor).toBe(0.01);
    expect(new Semaphore(redis, "names", { permits: 3 }).permits).toBe(3);
    expect(new Redlock(clients, "names", { ttlMs: 1_000, driftFactor: 0.02, nodeTimeoutMs: 100 }).driftFactor).toBe(
      0.02,
    );
    expect(() => new Mutex(redis, "names", { driftFactor: 0.02 } as never)).toThrow(InvalidArgumentError);
    expect(() => new Semaphore(redis, "names", { permits: 2, driftFactor: 0.02 } as never)).toThrow(
      InvalidArgumentError,
    );
    // lockTimeout -> ttlMs: 10 ms to 24 h, default 30 s.
    expect(new Mutex(redis, "names").ttlMs).toBe(30_000);
    expect(() => new Mutex(redis, "names", { ttlMs: 9 })).toThrow(InvalidArgumentError);
    expect(() => new Mutex(redis, "names", { ttlMs: 86_400_001 })).toThrow(InvalidArgumentError);
    // acquireTimeout (default 10 s) -> waitMs (default 10 s)
    expect(DEFAULT_WAIT_MS).toBe(10_000);
    // Semaphore(redis, key, limit) -> Semaphore(redis, name, { permits: limit }): permits is required.
    expect(() => new Semaphore(redis, "names", {} as never)).toThrow(InvalidArgumentError);
  });

  it("Mutex: the same mutual exclusion; TimeoutError -> LockBusyError; acquireAttemptsLimit: 1 -> tryAcquire()", async () => {
    const key = fresh();
    const holder = new RsMutex(peer, key, { lockTimeout: 10_000 });
    const other = new RsMutex(peer, key, { lockTimeout: 10_000, acquireAttemptsLimit: 1 });
    const waiting = new RsMutex(peer, key, { lockTimeout: 10_000, acquireTimeout: 100 });
    const ours = new Mutex(redis, key, { prefix, ttlMs: 10_000 });

    await holder.acquire();
    const lease = await ours.acquire();
    expect(holder.isAcquired).toBe(true);
    expect(lease.signal.aborted).toBe(false); // isAcquired -> !lease.signal.aborted

    const peerOnce = await countCommands(server, () => other.tryAcquire());
    expect(peerOnce.result).toBe(false);
    expect(peerOnce.sent).toEqual({ set: 1 });
    const ourOnce = await countCommands(server, () => ours.tryAcquire());
    expect(ourOnce.result).toBeNull();
    expect(Object.values(ourOnce.sent).reduce((a, b) => a + b, 0)).toBe(1);

    await expect(waiting.acquire()).rejects.toBeInstanceOf(TimeoutError);
    await expect(ours.acquire({ waitMs: 100 })).rejects.toBeInstanceOf(LockBusyError);
    await expect(ours.acquire({ waitMs: 0 })).rejects.toBeInstanceOf(LockBusyError);

    await holder.release();
    expect(holder.isAcquired).toBe(false);
    expect(await lease.release()).toBe(true);
    expect(lease.signal.aborted).toBe(true); // released: isAcquired false in both

    expect(await other.tryAcquire()).toBe(true);
    const next = await ours.tryAcquire();
    expect(next).not.toBeNull();
    await other.release();
    await next?.release();
  });

  it("redis-semaphore's tryAcquire() waits up to acquireTimeout; Coordis' tryAcquire() makes one attempt", async () => {
    const key = fresh();
    const holder = new RsMutex(peer, key, { lockTimeout: 10_000 });
    const tryer = new RsMutex(peer, key, { lockTimeout: 10_000, acquireTimeout: 300, retryInterval: 10 });
    const ours = new Mutex(redis, key, { prefix, ttlMs: 10_000 });
    await holder.acquire();
    const lease = await ours.acquire();
    const peerTry = await countCommands(server, () => tryer.tryAcquire());
    expect(peerTry.result).toBe(false);
    expect(peerTry.sent.set ?? 0).toBeGreaterThan(1); // it kept trying for acquireTimeout
    const ourTry = await countCommands(server, () => ours.tryAcquire());
    expect(ourTry.result).toBeNull();
    expect(Object.values(ourTry.sent).reduce((a, b) => a + b, 0)).toBe(1);
    // The migration of a waiting tryAcquire(): acquire({ waitMs }) catching LockBusyError.
    await expect(
      ours.acquire({ waitMs: 300 }).catch((e: unknown) => (e instanceof LockBusyError ? null : e)),
    ).resolves.toBeNull();
    await holder.release();
    await lease.release();
  });

  it("acquire() refreshes by default in redis-semaphore; a Coordis lease from acquire() is not extended, using() is", async () => {
    const key = fresh();
    // The peer: lockTimeout 300 ms, refreshed every 240 ms (0.8 × lockTimeout) by default until release().
    // The same for a lock taken with tryAcquire() (another key, in parallel).
    const holder = new RsMutex(peer, key, { lockTimeout: 300 });
    const tried = new RsMutex(peer, `${key}-try`, { lockTimeout: 300, acquireAttemptsLimit: 1 });
    await holder.acquire();
    expect(await tried.tryAcquire()).toBe(true);
    const contenders = [key, `${key}-try`].map(
      (k) => new RsMutex(peer, k, { lockTimeout: 300, acquireTimeout: 1_200 }),
    );
    const outcomes = await Promise.all(contenders.map((c) => c.acquire().catch((e: unknown) => e)));
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(TimeoutError); // still held after 4 × lockTimeout
    expect(holder.isAcquired).toBe(true);
    expect(tried.isAcquired).toBe(true);
    await Promise.all([holder.release(), tried.release()]);

    // Coordis: the same acquire() leaves the lease to expire after ttlMs; another holder gets it.
    const ours = new Mutex(redis, key, { prefix, ttlMs: 300 });
    const lease = await ours.acquire();
    const next = await ours.acquire({ waitMs: 5_000 });
    expect(next.fence).toBeGreaterThan(lease.fence);
    expect(await lease.release()).toBe(false); // lost: release() says so, and deletes nothing of the next holder's
    expect(await ours.tryAcquire()).toBeNull();
    expect(await next.release()).toBe(true);

    // using() is the refreshed form: held past 4 × ttlMs while the function runs.
    await ours.using(async (held) => {
      await expect(ours.acquire({ waitMs: 1_200 })).rejects.toBeInstanceOf(LockBusyError);
      expect(held.signal.aborted).toBe(false);
    });
    expect(await ours.tryAcquire().then((l) => l?.release())).toBe(true);

    // using(fn, { autoExtend: false }) is the unrefreshed form (the peer's refreshInterval: 0).
    await ours.using(
      async (held) => {
        const other = await ours.acquire({ waitMs: 5_000 });
        expect(await other.release()).toBe(true);
        await expect(held.extend()).rejects.toBeInstanceOf(LeaseLostError);
      },
      { autoExtend: false },
    );
  });

  it("refreshInterval: 0 -> a lease from acquire(): both expire after lockTimeout / ttlMs; release() of a lost lock", async () => {
    const key = fresh();
    const holder = new RsMutex(peer, key, { lockTimeout: 200, refreshInterval: 0 });
    const next = new RsMutex(peer, key, { lockTimeout: 10_000, acquireTimeout: 5_000 });
    await holder.acquire();
    await next.acquire(); // after the holder's lockTimeout
    await expect(holder.release()).resolves.toBeUndefined(); // lost: nothing said, nothing deleted
    expect(await peer.get(`mutex:${key}`)).toBe(next.identifier);
    await next.release();

    const ours = new Mutex(redis, key, { prefix, ttlMs: 200 });
    const lease = await ours.acquire();
    const other = await ours.acquire({ waitMs: 5_000 });
    expect(await lease.release()).toBe(false);
    await expect(lease.extend()).rejects.toBeInstanceOf(LeaseLostError);
    expect(await other.release()).toBe(true);
  });

  it("onLockLost -> lease.signal's abort event (reason LeaseLostError), nothing thrown outside the code", async () => {
    const key = fresh();
    const lost: unknown[] = [];
    const holder = new RsMutex(peer, key, {
      lockTimeout: 1_000,
      refreshInterval: 50,
      onLockLost: (err) => {
        lost.push(err);
      },
    });
    await holder.acquire();
    await peer.del(`mutex:${key}`); // the lock disappears under its holder
    await waitUntil("the peer calls onLockLost", () => lost.length > 0);
    expect(lost[0]).toBeInstanceOf(LostLockError);
    expect(holder.isAcquired).toBe(false);

    const ours = new Mutex(redis, key, { prefix, ttlMs: 300 });
    const result = ours.using(async (lease) => {
      const aborted = deferred();
      lease.signal.addEventListener("abort", aborted.resolve);
      await redis.del(`${prefix}:lock:{${key}}`);
      await aborted.promise; // the next automatic extension finds the lock gone
      throw lease.signal.reason;
    });
    await expect(result).rejects.toBeInstanceOf(LeaseLostError);
  });

  it("acquire(abortSignal) -> acquire({ signal }): both reject with the signal's reason", async () => {
    const key = fresh();
    const holder = new RsMutex(peer, key, { lockTimeout: 10_000 });
    const ours = new Mutex(redis, key, { prefix, ttlMs: 10_000 });
    await holder.acquire();
    const lease = await ours.acquire();
    const controller = new AbortController();
    const reason = new Error("shutting down");
    const waiting = new RsMutex(peer, key, { lockTimeout: 10_000, acquireTimeout: 10_000 });
    const peerWait = waiting.acquire(controller.signal).catch((e: unknown) => e);
    const ourWait = ours.acquire({ waitMs: 10_000, signal: controller.signal }).catch((e: unknown) => e);
    controller.abort(reason);
    expect(await peerWait).toBe(reason);
    expect(await ourWait).toBe(reason);
    expect(waiting.isAcquired).toBe(false);
    await holder.release();
    expect(await lease.release()).toBe(true);
  });

  it("Semaphore(redis, key, limit) -> Semaphore(redis, name, { permits: limit }): the same number of holders", async () => {
    const key = fresh();
    const peerSems = [0, 1, 2].map(
      () => new RsSemaphore(peer, key, 2, { lockTimeout: 10_000, acquireAttemptsLimit: 1 }),
    );
    const ours = new Semaphore(redis, key, { prefix, permits: 2, ttlMs: 10_000 });
    const peerResults: boolean[] = [];
    const ourLeases: (Lease | null)[] = [];
    for (const s of peerSems) {
      peerResults.push(await s.tryAcquire());
      ourLeases.push(await ours.tryAcquire());
    }
    expect(peerResults).toEqual([true, true, false]);
    expect(ourLeases.map((l) => l !== null)).toEqual(peerResults);
    await peerSems[0]?.release();
    expect(await ourLeases[0]?.release()).toBe(true);
    expect(await peerSems[2]?.tryAcquire()).toBe(true);
    const again = await ours.tryAcquire();
    expect(again).not.toBeNull();
    await Promise.all([peerSems[1]?.release(), peerSems[2]?.release()]);
    await Promise.all([ourLeases[1]?.release(), again?.release()]);
  });

  it("new RedlockMutex(clients, key, opts) -> new Redlock(masters, name, opts): exclusion on a quorum", async () => {
    const key = fresh();
    const a = new RedlockMutex(peers, key, { lockTimeout: 10_000, acquireAttemptsLimit: 1 });
    const b = new RedlockMutex(peers, key, { lockTimeout: 10_000, acquireAttemptsLimit: 1 });
    const ours = new Redlock(clients, key, { prefix, ttlMs: 10_000 });
    expect(await a.tryAcquire()).toBe(true);
    const lease = await ours.tryAcquire();
    expect(lease).not.toBeNull();
    expect(await b.tryAcquire()).toBe(false);
    expect(await ours.tryAcquire()).toBeNull();
    // Both hold on a quorum: one master lost leaves the lock held.
    await peers[0]?.del(`mutex:${key}`);
    await clients[0]?.del(`${prefix}:lock:{${key}}`);
    expect(await b.tryAcquire()).toBe(false);
    expect(await ours.tryAcquire()).toBeNull();
    await a.release();
    expect(await lease?.release()).toBe(true);
    expect(await b.tryAcquire()).toBe(true);
    await b.release();
  });
});
