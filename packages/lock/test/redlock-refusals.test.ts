import { aclRules, connect, type RedisClient, RedisUnavailableError, ScriptError } from "@coordis/core";
import { Mutex, Redlock } from "@coordis/lock";
import { LEAST_PRIVILEGE_USER, type RedisGroup, recordObserver, startRedisGroup, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// A master that refuses a script (ACL NOPERM, OOM on a full noeviction Redis) has answered: it is not an unreachable
// master. Refusals that leave no possible quorum end an acquire at once with the refusal, as a Mutex's one Redis
// does; extend and release report the refusal instead of masters that "did not answer".
describe("Redlock when masters refuse", () => {
  let group: RedisGroup;
  /** The least-privilege user: keys under `coordis:*` only. */
  let clients: RedisClient[];
  let admins: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(3, { leastPrivilege: true });
    clients = group.urls.map((u) => connect(u, { commandTimeoutMs: 2_000 }));
    admins = group.adminUrls.map((u) => connect(u));
    await Promise.all([...clients, ...admins].map((c) => c.ping()));
    for (const a of admins) await a.config("SET", "maxmemory-policy", "noeviction");
  });
  afterAll(async () => {
    for (const c of [...clients, ...admins]) c.disconnect();
    await group.stop();
  });

  /** The acquire reports of `observer`: outcome and attempts. */
  const acquires = (observer: ReturnType<typeof recordObserver>) =>
    observer.ops.filter((o) => o.op === "acquire").map((o) => [o.outcome, o.attributes?.attempts]);

  it("a prefix the ACL user may not touch: acquire() rejects with NOPERM after one attempt, as Mutex does", async () => {
    const observer = recordObserver();
    const redlock = new Redlock(clients, "invoice-42", { prefix: "billing", observer });
    const err = await redlock.acquire({ waitMs: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScriptError);
    expect((err as Error).message).toMatch(/NOPERM/);
    expect(acquires(observer)).toEqual([["error", 1]]);
    // The Mutex on one of those masters says the same.
    const mutexErr = await new Mutex(clients[0] as RedisClient, "invoice-42", { prefix: "billing" })
      .acquire({ waitMs: 5_000 })
      .catch((e: unknown) => e);
    expect(mutexErr).toBeInstanceOf(ScriptError);
    await expect(redlock.tryAcquire()).rejects.toBeInstanceOf(ScriptError);
  });

  /** Fills masters `which` (noeviction): new data is refused with OOM until the returned function empties them. */
  async function fill(which: number[]): Promise<() => Promise<void>> {
    for (const i of which) {
      const admin = admins[i] as RedisClient;
      await admin.set(`${prefix}:filler`, "x".repeat(2_000_000));
      await admin.config("SET", "maxmemory", "1mb");
    }
    return async () => {
      for (const i of which) {
        await admins[i]?.config("SET", "maxmemory", "0");
        await admins[i]?.del(`${prefix}:filler`);
      }
    };
  }

  it("full Redis (OOM) on every master, or on two of three: acquire() rejects with the OOM refusal at once", async () => {
    for (const which of [
      [0, 1, 2],
      [1, 2],
    ]) {
      const observer = recordObserver();
      const name = `full-${which.join("")}`;
      const empty = await fill(which);
      try {
        const err = await new Redlock(clients, name, { prefix, observer })
          .acquire({ waitMs: 5_000 })
          .catch((e: unknown) => e);
        expect(err, `full: ${which}`).toBeInstanceOf(ScriptError);
        expect((err as Error).message).toMatch(/OOM/);
        expect(acquires(observer), `full: ${which}`).toEqual([["error", 1]]);
      } finally {
        await empty();
      }
      // Nothing was left held: a master that granted before the round was lost released it.
      for (const admin of admins) expect(await admin.exists(`${prefix}:lock:{${name}}`)).toBe(0);
    }
  });

  it("full Redis on one master of three: the two others are a quorum, the lease is granted", async () => {
    const empty = await fill([2]);
    try {
      const lease = await new Redlock(clients, "full-one", { prefix }).acquire({ waitMs: 5_000 });
      expect(lease.fence).toBeGreaterThan(0);
      await lease.extend();
      expect(await lease.release()).toBe(true);
    } finally {
      await empty();
    }
  });

  it("extend() and release() refused by two masters report the refusal, not masters that did not answer", async () => {
    const key = `${prefix}:lock:{acl}`;
    const lease = await new Redlock(clients, "acl", { prefix, ttlMs: 30_000 }).acquire();
    // An operator narrows the user's keys on masters 1 and 2: they now refuse this lock's scripts (NOPERM).
    const narrow = (i: number) => admins[i]?.call("ACL", "SETUSER", LEAST_PRIVILEGE_USER, "resetkeys", "~other:*");
    const restore = (i: number) => admins[i]?.call("ACL", "SETUSER", LEAST_PRIVILEGE_USER, ...aclRules());
    await Promise.all([narrow(1), narrow(2)]);
    try {
      const extendErr = await lease.extend().catch((e: unknown) => e);
      expect(extendErr).toBeInstanceOf(ScriptError);
      expect(extendErr).not.toBeInstanceOf(RedisUnavailableError);
      expect((extendErr as Error).message).toMatch(/NOPERM/);
      // Refused is not "not held": the lease is not lost.
      expect(lease.signal.aborted).toBe(false);
      const releaseErr = await lease.release().catch((e: unknown) => e);
      expect(releaseErr).toBeInstanceOf(ScriptError);
      expect((releaseErr as Error).message).toMatch(/NOPERM/);
      for (const i of [1, 2]) expect(await admins[i]?.get(key), `master ${i}`).toBe(lease.token);
    } finally {
      await Promise.all([restore(1), restore(2)]);
    }
    // The lease can be released again once the masters accept it.
    expect(await lease.release()).toBe(true);
    for (const admin of admins) expect(await admin.exists(key)).toBe(0);
  });
});
