import { randomBytes } from "node:crypto";
import { Redlock as SesameRedlock } from "@sesamecare-oss/redlock";
import { Mutex as RsMutex, RedlockMutex as RsRedlockMutex, Semaphore as RsSemaphore } from "redis-semaphore";
import Redlock from "redlock";
import { coordisExports, type LockLike, type LockModule } from "../coordis.js";
import type { Scenario } from "../types.js";
import { COMPARE_DELETE_LUA, KEY_SPACE, loadScript } from "./raw.js";

const TTL_MS = 30_000;
const GROUP = "lock cycle";
const BASELINE = "lock/raw";
const PERMITS = 5;

// Every cycle locks its own resource (n modulo KEY_SPACE), so the 50 callers never contend: the figure is the cost
// of an uncontended acquire + release.

async function cycle(lock: LockLike): Promise<void> {
  const lease = await lock.tryAcquire();
  if (lease === null) throw new Error("lock unexpectedly busy");
  await lease.release();
}

/** Lock cycle (acquire + release): raw SET NX PX + compare-delete, the peers, and Coordis Mutex / Redlock / Semaphore. */
export function lockScenarios(): Scenario[] {
  return [
    {
      id: BASELINE,
      group: GROUP,
      name: "raw SET NX PX + EVALSHA compare-delete",
      kind: "raw",
      topology: "single",
      unit: "cycles",
      async setup(ctx) {
        const redis = ctx.client();
        const sha = await loadScript(redis, COMPARE_DELETE_LUA);
        return {
          async op(n) {
            const key = `${ctx.prefix}:r${n % KEY_SPACE}`;
            const token = randomBytes(16).toString("hex");
            if ((await redis.set(key, token, "PX", TTL_MS, "NX")) !== "OK") throw new Error("lock unexpectedly busy");
            await redis.evalsha(sha, 1, key, token);
          },
        };
      },
    },
    {
      id: "lock/redlock5",
      group: GROUP,
      name: "redlock@5.0.0-beta.2 (1 master)",
      kind: "peer",
      baseline: BASELINE,
      topology: "single",
      unit: "cycles",
      async setup(ctx) {
        const redlock = new Redlock([ctx.client()], { retryCount: 0 });
        return {
          async op(n) {
            const lock = await redlock.acquire([`${ctx.prefix}:r${n % KEY_SPACE}`], TTL_MS);
            await lock.release();
          },
        };
      },
    },
    {
      id: "lock/sesame-redlock",
      group: GROUP,
      name: "@sesamecare-oss/redlock (1 master)",
      kind: "peer",
      baseline: BASELINE,
      topology: "single",
      unit: "cycles",
      async setup(ctx) {
        const redlock = new SesameRedlock([ctx.client()], { retryCount: 0 });
        return {
          async op(n) {
            const lock = await redlock.acquire([`${ctx.prefix}:r${n % KEY_SPACE}`], TTL_MS);
            await lock.release();
          },
        };
      },
    },
    {
      id: "lock/redis-semaphore-mutex",
      group: GROUP,
      name: "redis-semaphore Mutex",
      kind: "peer",
      baseline: BASELINE,
      topology: "single",
      unit: "cycles",
      async setup(ctx) {
        const redis = ctx.client();
        return {
          async op(n) {
            const mutex = new RsMutex(redis, `${ctx.prefix}:r${n % KEY_SPACE}`, { lockTimeout: TTL_MS });
            if (!(await mutex.tryAcquire())) throw new Error("lock unexpectedly busy");
            await mutex.release();
          },
        };
      },
    },
    {
      id: "lock/redis-semaphore-semaphore",
      group: GROUP,
      name: `redis-semaphore Semaphore (${PERMITS} permits)`,
      kind: "peer",
      baseline: BASELINE,
      topology: "single",
      unit: "cycles",
      async setup(ctx) {
        const redis = ctx.client();
        return {
          async op(n) {
            const sem = new RsSemaphore(redis, `${ctx.prefix}:r${n % KEY_SPACE}`, PERMITS, { lockTimeout: TTL_MS });
            if (!(await sem.tryAcquire())) throw new Error("semaphore unexpectedly full");
            await sem.release();
          },
        };
      },
    },
    {
      id: "lock/coordis-mutex",
      group: GROUP,
      name: "Coordis Mutex",
      kind: "coordis",
      baseline: BASELINE,
      topology: "single",
      unit: "cycles",
      reference: "lock/redis-semaphore-mutex",
      roundTrips: 2,
      roundTripsNote: "acquire script + release script",
      async setup(ctx) {
        const { Mutex } = await coordisExports<LockModule>("lock", ["Mutex"]);
        const redis = ctx.client();
        const prefix = ctx.prefix;
        return { op: (n) => cycle(new Mutex(redis, `r${n % KEY_SPACE}`, { ttlMs: TTL_MS, prefix })) };
      },
    },
    {
      id: "lock/coordis-semaphore",
      group: GROUP,
      name: `Coordis Semaphore (${PERMITS} permits)`,
      kind: "coordis",
      baseline: BASELINE,
      topology: "single",
      unit: "cycles",
      reference: "lock/redis-semaphore-semaphore",
      roundTrips: 2,
      roundTripsNote: "acquire script + release script",
      async setup(ctx) {
        const { Semaphore } = await coordisExports<LockModule>("lock", ["Semaphore"]);
        const redis = ctx.client();
        const prefix = ctx.prefix;
        return {
          op: (n) => cycle(new Semaphore(redis, `r${n % KEY_SPACE}`, { permits: PERMITS, ttlMs: TTL_MS, prefix })),
        };
      },
    },
    {
      id: "lock/redlock5-x3",
      group: GROUP,
      name: "redlock@5.0.0-beta.2 ×3 masters",
      kind: "peer",
      baseline: BASELINE,
      topology: "group3",
      unit: "cycles",
      async setup(ctx) {
        const redlock = new Redlock(
          ctx.group.map((s) => ctx.client(s)),
          { retryCount: 0 },
        );
        return {
          async op(n) {
            const lock = await redlock.acquire([`${ctx.prefix}:r${n % KEY_SPACE}`], TTL_MS);
            await lock.release();
          },
        };
      },
    },
    {
      id: "lock/sesame-redlock-x3",
      group: GROUP,
      name: "@sesamecare-oss/redlock ×3 masters",
      kind: "peer",
      baseline: BASELINE,
      topology: "group3",
      unit: "cycles",
      async setup(ctx) {
        const redlock = new SesameRedlock(
          ctx.group.map((s) => ctx.client(s)),
          { retryCount: 0 },
        );
        return {
          async op(n) {
            const lock = await redlock.acquire([`${ctx.prefix}:r${n % KEY_SPACE}`], TTL_MS);
            await lock.release();
          },
        };
      },
    },
    {
      id: "lock/redis-semaphore-redlock-mutex",
      group: GROUP,
      name: "redis-semaphore RedlockMutex ×3 masters",
      kind: "peer",
      baseline: BASELINE,
      topology: "group3",
      unit: "cycles",
      async setup(ctx) {
        const clients = ctx.group.map((s) => ctx.client(s));
        return {
          async op(n) {
            const mutex = new RsRedlockMutex(clients, `${ctx.prefix}:r${n % KEY_SPACE}`, { lockTimeout: TTL_MS });
            if (!(await mutex.tryAcquire())) throw new Error("lock unexpectedly busy");
            await mutex.release();
          },
        };
      },
    },
    {
      id: "lock/coordis-redlock-x3",
      group: GROUP,
      name: "Coordis Redlock ×3 masters",
      kind: "coordis",
      baseline: BASELINE,
      topology: "group3",
      unit: "cycles",
      reference: "lock/redlock5-x3",
      roundTrips: 6,
      roundTripsNote:
        "acquire + release on each of 3 masters; the fence-sync round is skipped when the masters' fences agree",
      async setup(ctx) {
        const { Redlock: CoordisRedlock } = await coordisExports<LockModule>("lock", ["Redlock"]);
        const nodes = ctx.group.map((s) => ctx.client(s));
        const prefix = ctx.prefix;
        return { op: (n) => cycle(new CoordisRedlock(nodes, `r${n % KEY_SPACE}`, { ttlMs: TTL_MS, prefix })) };
      },
    },
  ];
}
