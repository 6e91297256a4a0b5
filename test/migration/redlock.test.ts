/**
 * The redlock 5 (beta) and @sesamecare-oss/redlock rows of the migration table in packages/lock/README.md, checked
 * side by side: each peer (installed as devDependencies) and its Coordis mapping on the same three masters.
 */
import { connect, InvalidArgumentError, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { LeaseLostError, LockBusyError, Mutex, Redlock } from "@coordis/lock";
import { freePort, type RedisGroup, recordObserver, startRedisGroup, testPrefix, waitUntil } from "@coordis/testing";
import {
  ExecutionError as SesameExecutionError,
  Redlock as SesameRedlock,
  ResourceLockedError as SesameResourceLockedError,
} from "@sesamecare-oss/redlock";
import { Redis } from "ioredis";
import Redlock5 from "redlock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The part of redlock 5's API this file uses. Its own declaration (dist/index.d.ts) is not reachable under NodeNext
 * (no "types" in its exports map; test/bench/redlock5.d.ts declares a smaller slice), so the module is typed here.
 */
interface PeerLock {
  readonly resources: string[];
  readonly value: string;
  expiration: number;
  release(): Promise<unknown>;
  extend(duration: number): Promise<PeerLock>;
}
type PeerSignal = AbortSignal & { error?: Error };
interface PeerSettings {
  driftFactor: number;
  retryCount: number;
  retryDelay: number;
  retryJitter: number;
  automaticExtensionThreshold: number;
}
interface PeerRedlock {
  readonly settings: PeerSettings;
  acquire(resources: string[], duration: number, settings?: Partial<PeerSettings>): Promise<PeerLock>;
  release(lock: PeerLock, settings?: Partial<PeerSettings>): Promise<unknown>;
  extend(lock: PeerLock, duration: number, settings?: Partial<PeerSettings>): Promise<PeerLock>;
  using<T>(
    resources: string[],
    duration: number,
    settings: Partial<PeerSettings>,
    routine: (signal: PeerSignal) => Promise<T>,
  ): Promise<T>;
  using<T>(resources: string[], duration: number, routine: (signal: PeerSignal) => Promise<T>): Promise<T>;
  on(event: "error", listener: (error: unknown) => void): unknown;
  quit(): Promise<void>;
}
type PeerCtor = new (clients: Iterable<Redis>, settings?: Partial<PeerSettings>) => PeerRedlock;
const v5 = await import("redlock");
const Redlock5Ctor = Redlock5 as unknown as PeerCtor;
const peerErrors = v5 as unknown as {
  ExecutionError: new (...args: never[]) => Error;
  ResourceLockedError: new (...args: never[]) => Error;
};
const SesameCtor = SesameRedlock as unknown as PeerCtor;

const prefix = testPrefix("rl");
let n = 0;
const fresh = () => {
  n += 1;
  return `${prefix}-invoice-${n}`;
};
/** Quiet peers: their "error" events (a vote against while the lock is held) are expected here. */
const quiet = (r: PeerRedlock) => {
  r.on("error", () => {});
  return r;
};

const PEERS = [
  {
    peer: "redlock 5",
    make: Redlock5Ctor,
    ExecutionError: peerErrors.ExecutionError,
    ResourceLockedError: peerErrors.ResourceLockedError,
  },
  {
    peer: "@sesamecare-oss/redlock",
    make: SesameCtor,
    ExecutionError: SesameExecutionError,
    ResourceLockedError: SesameResourceLockedError,
  },
] as const;

describe("migration from redlock 5 / @sesamecare-oss/redlock to @coordis/lock", () => {
  let group: RedisGroup;
  let peers: Redis[];
  let clients: RedisClient[];

  beforeAll(async () => {
    group = await startRedisGroup(3);
    peers = group.adminUrls.map((u) => new Redis(u, { maxRetriesPerRequest: 1 }));
    clients = group.adminUrls.map((u) => connect(u));
    await Promise.all([...peers, ...clients].map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of [...peers, ...clients]) c.disconnect();
    await group.stop();
  });

  it("every peer name the table maps exists in the installed versions, and the Coordis names with their shape", () => {
    for (const { make } of PEERS) {
      const r = new make(peers, { driftFactor: 0.01, retryCount: 1, retryDelay: 10, retryJitter: 5 });
      expect(Object.keys(r.settings)).toEqual(
        expect.arrayContaining([
          "driftFactor",
          "retryCount",
          "retryDelay",
          "retryJitter",
          "automaticExtensionThreshold",
        ]),
      );
      for (const method of ["acquire", "release", "extend", "using", "quit", "on"] as const) {
        expect(typeof r[method], method).toBe("function");
      }
    }
    expect(typeof peerErrors.ExecutionError).toBe("function");
    expect(typeof peerErrors.ResourceLockedError).toBe("function");
    expect(typeof SesameResourceLockedError).toBe("function");
    expect(new SesameRedlock(peers, { db: 2 }).settings.db).toBe(2); // the fork's `db`
    const lock = new Redlock(clients, "names", { ttlMs: 5_000, driftFactor: 0.01, nodeTimeoutMs: 200 });
    for (const method of ["acquire", "tryAcquire", "using"] as const)
      expect(typeof lock[method], method).toBe("function");
    expect(() => new Redlock(clients, "names", { retryCount: 3 } as never)).toThrow(InvalidArgumentError);
    expect(() => new Redlock(clients, "names", { driftFactor: 0.6 })).toThrow(InvalidArgumentError);
  });

  it("README example: the redlock 5 / sesame `using` and the Coordis one run the same routine under the lock", async () => {
    for (const { make } of PEERS) {
      const id = fresh();
      const paid: { by: string; fence?: number }[] = [];
      const pay = async (_id: string, options?: { fence: number }) => {
        paid.push({ by: options === undefined ? "peer" : "coordis", ...options });
      };
      // before
      const redlock = quiet(new make(peers, { retryCount: 10, retryDelay: 200, retryJitter: 200 }));
      await redlock.using([`invoice:${id}`], 5_000, async (signal) => {
        if (signal.aborted) throw signal.error;
        await pay(id);
      });
      // after
      await new Redlock(clients, `invoice:${id}`, { prefix, ttlMs: 5_000 }).using(
        async (lease) => {
          if (lease.signal.aborted) throw lease.signal.reason;
          await pay(id, { fence: lease.fence }); // the store rejects a lower fence
        },
        { waitMs: 4_000 },
      );
      expect(paid.map((p) => p.by)).toEqual(["peer", "coordis"]);
      expect(paid[1]?.fence).toBeGreaterThan(0);
      // Both released on return.
      for (const admin of peers) {
        expect(await admin.exists(`invoice:${id}`)).toBe(0);
        expect(await admin.exists(`${prefix}:lock:{invoice:${id}}`)).toBe(0);
      }
    }
  });

  for (const { peer, make, ExecutionError, ResourceLockedError } of PEERS) {
    describe(peer, () => {
      it("ResourceLockedError on the 'error' event -> the observer's acquire outcome busy and event lease-lost", async () => {
        const name = fresh();
        const errors: unknown[] = [];
        const redlock = new make(peers, { retryCount: 0 });
        redlock.on("error", (e) => errors.push(e));
        const holder = await redlock.acquire([name], 10_000);
        await expect(redlock.acquire([name], 10_000)).rejects.toBeInstanceOf(ExecutionError);
        expect(errors.length).toBeGreaterThan(0);
        expect(errors.every((e) => e instanceof ResourceLockedError)).toBe(true);
        await holder.release();

        const rec = recordObserver();
        const ours = new Redlock(clients, name, { prefix, ttlMs: 10_000, observer: rec });
        const lease = await ours.acquire();
        expect(lease.token).toEqual(expect.any(String)); // identifier / lock.value -> lease.token
        expect(await ours.tryAcquire()).toBeNull();
        expect(rec.ops.filter((o) => o.op === "acquire").map((o) => o.outcome)).toEqual(["acquired", "busy"]);
        for (const admin of peers) await admin.del(`${prefix}:lock:{${name}}`);
        await expect(lease.extend()).rejects.toBeInstanceOf(LeaseLostError);
        await rec.waitForEvent((e) => e.type === "lease-lost", { what: "lease-lost" });
      });

      it("acquire: the same exclusion on a quorum; retryCount: 0 -> tryAcquire(); ExecutionError -> LockBusyError", async () => {
        const name = fresh();
        const redlock = quiet(new make(peers, { retryCount: 0 }));
        const waiting = quiet(new make(peers, { retryCount: 3, retryDelay: 30, retryJitter: 10 }));
        const ours = new Redlock(clients, name, { prefix, ttlMs: 10_000 });
        const lock = await redlock.acquire([name], 10_000);
        const lease = await ours.acquire();
        expect(lock.resources).toEqual([name]);
        await expect(redlock.acquire([name], 10_000)).rejects.toBeInstanceOf(ExecutionError);
        await expect(waiting.acquire([name], 10_000)).rejects.toBeInstanceOf(ExecutionError);
        expect(await ours.tryAcquire()).toBeNull();
        await expect(ours.acquire({ waitMs: 0 })).rejects.toBeInstanceOf(LockBusyError);
        await expect(ours.acquire({ waitMs: 120 })).rejects.toBeInstanceOf(LockBusyError);
        // One master lost its key: still held on a quorum in both.
        await peers[0]?.del(name);
        await clients[0]?.del(`${prefix}:lock:{${name}}`);
        await expect(redlock.acquire([name], 10_000)).rejects.toBeInstanceOf(ExecutionError);
        expect(await ours.tryAcquire()).toBeNull();
        await lock.release();
        expect(await lease.release()).toBe(true);
        const again = await redlock.acquire([name], 10_000);
        const next = await ours.tryAcquire();
        expect(next?.fence).toBeGreaterThan(lease.fence);
        await again.release();
        await next?.release();
      });

      it("extend: a new Lock vs the same lease; both refuse once the lock is gone", async () => {
        const name = fresh();
        const redlock = quiet(new make(peers, { retryCount: 0 }));
        const ours = new Redlock(clients, name, { prefix, ttlMs: 2_000 });
        const lock = await redlock.acquire([name], 2_000);
        const lease = await ours.acquire();
        const extended = await lock.extend(10_000);
        expect(extended).not.toBe(lock);
        expect(extended.value).toBe(lock.value);
        expect(extended.expiration).toBeGreaterThan(lock.expiration);
        const viaInstance = await redlock.extend(extended, 10_000); // redlock.extend(lock, duration): the same
        expect(viaInstance).not.toBe(extended);
        expect(viaInstance.value).toBe(lock.value);
        const before = lease.remainingMs();
        await lease.extend(10_000);
        expect(lease.remainingMs()).toBeGreaterThan(before);
        expect(lease.remainingMs()).toBeLessThanOrEqual(10_000 - 10_000 * 0.01 - 2); // driftFactor 0.01
        for (const admin of peers) await admin.del(name, `${prefix}:lock:{${name}}`);
        await expect(viaInstance.extend(10_000)).rejects.toBeInstanceOf(ExecutionError);
        await expect(redlock.extend(viaInstance, 10_000)).rejects.toBeInstanceOf(ExecutionError);
        await expect(lease.extend()).rejects.toBeInstanceOf(LeaseLostError);
        expect(lease.signal.aborted).toBe(true);
        expect(lease.signal.reason).toBeInstanceOf(LeaseLostError);
      });

      it("release of a lock already lost: the peer rejects with ExecutionError, Coordis resolves false", async () => {
        const name = fresh();
        const redlock = quiet(new make(peers, { retryCount: 0 }));
        const ours = new Redlock(clients, name, { prefix, ttlMs: 10_000 });
        const lock = await redlock.acquire([name], 10_000);
        const lease = await ours.acquire();
        for (const admin of peers) await admin.del(name, `${prefix}:lock:{${name}}`);
        const other = await redlock.acquire([name], 10_000);
        const next = await ours.acquire();
        await expect(lock.release()).rejects.toBeInstanceOf(ExecutionError);
        await expect(redlock.release(lock)).rejects.toBeInstanceOf(ExecutionError);
        expect(await lease.release()).toBe(false);
        // Neither deleted the next holder's lock.
        await expect(redlock.acquire([name], 10_000)).rejects.toBeInstanceOf(ExecutionError);
        expect(await ours.tryAcquire()).toBeNull();
        await other.release();
        expect(await next.release()).toBe(true);
      });

      it("using: extended while the routine runs; a lost lock aborts the signal (signal.error -> signal.reason)", async () => {
        const name = fresh();
        const redlock = quiet(new make(peers, { automaticExtensionThreshold: 150, retryCount: 0 }));
        const contender = quiet(new make(peers, { retryCount: 22, retryDelay: 40, retryJitter: 0 }));
        const ours = new Redlock(clients, name, { prefix, ttlMs: 400 });
        const peerRun = redlock.using([name], 400, async (signal) => {
          // Held for the contender's whole retry window, longer than 2 × the duration.
          await expect(contender.acquire([name], 400)).rejects.toBeInstanceOf(ExecutionError);
          expect(signal.aborted).toBe(false);
          const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
          for (const admin of peers) await admin.del(name);
          await aborted; // its next extension finds the lock gone
          expect(signal.error).toBeInstanceOf(Error);
          throw signal.error;
        });
        await expect(peerRun).rejects.toBeInstanceOf(ExecutionError);

        const ourRun = ours.using(async (lease) => {
          await expect(ours.acquire({ waitMs: 900 })).rejects.toBeInstanceOf(LockBusyError);
          expect(lease.signal.aborted).toBe(false);
          const aborted = new Promise<void>((resolve) => lease.signal.addEventListener("abort", () => resolve()));
          for (const admin of peers) await admin.del(`${prefix}:lock:{${name}}`);
          await aborted;
          throw lease.signal.reason;
        });
        await expect(ourRun).rejects.toBeInstanceOf(LeaseLostError);
      });
    });
  }

  it("the fork's context.lock in using(); Coordis hands the lease itself to the function", async () => {
    const name = fresh();
    const redlock = new SesameRedlock(peers);
    const seen = await redlock.using([name], 5_000, async (_signal, context) => context.lock.resources);
    expect(seen).toEqual([name]);
    const fence = await new Redlock(clients, name, { prefix, ttlMs: 5_000 }).using(async (lease) => lease.fence);
    expect(fence).toBeGreaterThan(0);
  });

  it("the fork's db -> the client's database: a lock on db 2 is not seen on db 0", async () => {
    const name = fresh();
    const url = group.adminUrls[0] as string;
    const db2 = connect(`${url}/2`);
    try {
      const lease = await new Mutex(db2, name, { prefix, ttlMs: 5_000 }).acquire();
      const onDb0 = new Mutex(clients[0] as RedisClient, name, { prefix, ttlMs: 5_000 });
      const other = await onDb0.tryAcquire();
      expect(other).not.toBeNull();
      expect(await db2.exists(`${prefix}:lock:{${name}}`)).toBe(1);
      await other?.release();
      expect(await lease.release()).toBe(true);
    } finally {
      db2.disconnect();
    }
  });

  it("no quorum reachable: ExecutionError from the peers, RedisUnavailableError (not LockBusyError) from Coordis", async () => {
    const name = fresh();
    const deadPorts = [await freePort(), await freePort()];
    const deadPeers = deadPorts.map(
      (p) =>
        new Redis({
          port: p,
          host: "127.0.0.1",
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          lazyConnect: true,
        }),
    );
    const deadClients = deadPorts.map((p) => connect(`redis://127.0.0.1:${p}`, { commandTimeoutMs: 300 }));
    for (const c of [...deadPeers, ...deadClients]) c.on("error", () => {});
    try {
      for (const { make, ExecutionError } of PEERS) {
        const redlock = quiet(new make([peers[0] as Redis, ...deadPeers], { retryCount: 0 }));
        await expect(redlock.acquire([name], 5_000)).rejects.toBeInstanceOf(ExecutionError);
      }
      const ours = new Redlock([clients[0] as RedisClient, ...deadClients], name, { prefix, ttlMs: 5_000 });
      await expect(ours.acquire({ waitMs: 0 })).rejects.toBeInstanceOf(RedisUnavailableError);
      await waitUntil(
        "nothing is left on the live master",
        async () => (await peers[0]?.exists(name, `${prefix}:lock:{${name}}`)) === 0,
      );
    } finally {
      for (const c of [...deadPeers, ...deadClients]) c.disconnect();
    }
  });
});
