import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { type Lease, LeaseLostError, LockBusyError, Redlock } from "@coordis/lock";
import {
  countCommands,
  eventually,
  type RedisGroup,
  type RedisServer,
  recordObserver,
  startRedisGroup,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** How long a master may take to answer again after a pause or restart; errors meanwhile mean "not yet". */
const RECOVERY = { timeoutMs: 8_000, intervalMs: 50, ignoreErrors: true };

describe("Redlock over 3 masters", () => {
  let group: RedisGroup;
  let clients: RedisClient[];
  /** Unrestricted clients of each master, to inspect and seed state outside the primitive under test. */
  let admins: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(3, { leastPrivilege: true });
    clients = group.urls.map((u) => connect(u, { commandTimeoutMs: 1_000 }));
    admins = group.adminUrls.map((u) => connect(u, { commandTimeoutMs: 1_000 }));
    await Promise.all([...clients, ...admins].map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of [...clients, ...admins]) c.disconnect();
    await group.stop();
  });

  it("acquires on a quorum in one parallel round (one EVALSHA per master), excludes others, releases", async () => {
    const a = new Redlock(clients, "basic", { prefix, ttlMs: 5_000 });
    const b = new Redlock(clients, "basic", { prefix, ttlMs: 5_000 });
    expect(a.quorum).toBe(2);
    await (await a.acquire()).release(); // warm the script caches
    const acquired = await countCommands(group.servers, () => a.acquire());
    expect(acquired.sent).toEqual({ evalsha: 3 });
    const lease = acquired.result;
    expect(await b.tryAcquire()).toBeNull();
    await expect(b.acquire({ waitMs: 100 })).rejects.toBeInstanceOf(LockBusyError);
    const released = await countCommands(group.servers, () => lease.release());
    expect(released.result).toBe(true);
    expect(released.sent).toEqual({ evalsha: 3 });
    const next = await b.acquire();
    expect(next.fence).toBeGreaterThan(lease.fence);
    await next.extend();
    expect(await next.release()).toBe(true);
    // Nothing is left on any master after a busy attempt released what it won.
    for (const admin of admins) expect(await admin.exists(`${prefix}:lock:{basic}`)).toBe(0);
  });

  it("keeps fences strictly increasing across holders whose quorums differ, with diverged counters", async () => {
    const fenceKey = `${prefix}:lock:{div}:fence`;
    const [s0, , s2] = group.servers as [RedisServer, RedisServer, RedisServer];
    await admins[0]?.set(fenceKey, "100");
    await admins[1]?.set(fenceKey, "5");
    await admins[2]?.set(fenceKey, "1000");
    const lock = new Redlock(clients, "div", { prefix, ttlMs: 5_000, nodeTimeoutMs: 150 });
    const fences: number[] = [];
    let lease: Lease;
    try {
      // Holder A wins {0, 1}: counters 101 and 6, fence 101; master 1 is raised to 101 (second round).
      s2.pause();
      lease = await lock.acquire();
      fences.push(lease.fence);
      expect(lease.fence).toBe(101);
      expect(await admins[1]?.get(fenceKey)).toBe("101");
      await lease.release();
      s2.resume();
      // Holder B wins {1, 2}: master 1 is at 101 (not 6), master 2 at 1000+: fence > 1000.
      s0.pause();
      lease = await lock.acquire();
      fences.push(lease.fence);
      await lease.release();
      s0.resume();
      // Holder C wins {0, 1} again: master 0 alone would say ~103, but master 1 was raised by B.
      s2.pause();
      lease = await lock.acquire();
      fences.push(lease.fence);
      await lease.release();
    } finally {
      for (const s of group.servers) if (s.paused) s.resume();
    }
    expect(fences[1]).toBeGreaterThan(1000);
    expect(fences[2]).toBeGreaterThan(fences[1] as number);
    expect(fences[1]).toBeGreaterThan(fences[0] as number);
    // Without the fence raise, C would have got max(node0, node1) = a value near 103.
    expect(fences[2]).toBeGreaterThan(1000);
    // Let the paused masters drain what was queued for them before the next test.
    await waitUntil("master 2 to answer again", async () => (await admins[2]?.ping()) === "PONG", RECOVERY);
  });

  it("a client whose own event loop is blocked past nodeTimeoutMs still counts the masters' answers", async () => {
    const lock = new Redlock(clients, "lag", { prefix, ttlMs: 10_000, nodeTimeoutMs: 100 });
    await (await lock.acquire()).release(); // the scripts are cached on every master
    /** Synchronous work of the application: nothing else runs meanwhile. */
    const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    // Blocked before the calls were even written (they leave at the end of this tick).
    const acquiring = lock.tryAcquire();
    block(500);
    const lease = await acquiring;
    expect(lease).not.toBeNull();
    // Blocked after they were written: the answers wait in the sockets while the node timeout passes.
    const releasing = (lease as Lease).release();
    setImmediate(() => block(500));
    expect(await releasing).toBe(true);
    for (const admin of admins) expect(await admin.exists(`${prefix}:lock:{lag}`)).toBe(0);
  });

  it("does not hand out a lease whose validity was consumed by a slow master, and leaves nothing held", async () => {
    const lock = new Redlock(clients, "slow", { prefix, ttlMs: 300, nodeTimeoutMs: 500 });
    const slow = group.servers[2];
    slow?.pause();
    let lease: Lease | null;
    try {
      lease = await lock.tryAcquire();
    } finally {
      slow?.resume();
    }
    expect(lease).toBeNull();
    await waitUntil(
      "the slow master to drop the key",
      async () => (await admins[2]?.exists(`${prefix}:lock:{slow}`)) === 0,
      RECOVERY,
    );
    for (const admin of admins) expect(await admin.exists(`${prefix}:lock:{slow}`)).toBe(0);
    const ok = await lock.tryAcquire();
    expect(ok).not.toBeNull();
    await ok?.release();
  });

  it("an attempt two masters answered only after the client gave up leaves no phantom lock, release script cached or not", async () => {
    // Clients that give up after 100 ms, and a node timeout of 50 ms.
    const impatient = group.urls.map((u) => connect(u, { commandTimeoutMs: 100 }));
    try {
      await Promise.all(impatient.map((c) => c.ping()));
      // Every master has both scripts cached (when this test runs alone too).
      await (await new Redlock(clients, "rl-phantom-warm", { prefix, ttlMs: 1_000 }).acquire()).release();
      const key = `${prefix}:lock:{rl-phantom}`;
      const lock = new Redlock(impatient, "rl-phantom", { prefix, ttlMs: 60_000, nodeTimeoutMs: 50 });
      for (const releaseCached of [true, false]) {
        // The masters forget every script, then run an acquire alone (another name; it lapses in 1 s): a master that
        // restarted and has granted since, but not released yet.
        if (!releaseCached) {
          await Promise.all(admins.map((a) => a.script("FLUSH")));
          await new Redlock(clients, "rl-phantom-warm", { prefix, ttlMs: 1_000 }).tryAcquire();
        }
        const fencesBefore = await Promise.all(admins.map(async (a) => Number((await a.get(`${key}:fence`)) ?? 0)));
        // Masters 0 and 1 are paused: the attempt wins master 2 only, gives up on the others and releases all three.
        // Resumed, masters 0 and 1 run the acquire late (granting it to a token nobody holds), then the release.
        await withPaused([0, 1], async () => {
          await expect(lock.tryAcquire(), `releaseCached=${releaseCached}`).rejects.toBeInstanceOf(
            RedisUnavailableError,
          );
          // The pause outlasts what the attempt sent: a PING sent after it, with the same timeout, times out later.
          for (const i of [0, 1]) await expect(impatient[i]?.ping()).rejects.toBeInstanceOf(Error);
        });
        // A PING answered on each connection was processed after the late acquire and the release behind it.
        for (const c of impatient) await eventually("the master to answer this client", () => c.ping(), RECOVERY);
        for (const [i, admin] of admins.entries()) {
          // The late acquire did run there (it took a fence), and was released.
          expect(Number(await admin.get(`${key}:fence`)), `master ${i}`).toBeGreaterThan(fencesBefore[i] as number);
          expect(await admin.exists(key), `master ${i} releaseCached=${releaseCached}`).toBe(0);
        }
      }
      // Nothing is held: a Redlock with default timeouts acquires at once.
      const lease = await new Redlock(clients, "rl-phantom", { prefix }).tryAcquire();
      expect(lease).not.toBeNull();
      await lease?.release();
    } finally {
      for (const c of impatient) c.disconnect();
    }
  });

  it("masters that lost their scripts answer NOSCRIPT after the round gave up: the release follows the acquire's retry", async () => {
    // Clients that wait long enough for the EVAL retry of a NOSCRIPT; a round that gives up after 50 ms.
    const patient = group.urls.map((u) => connect(u, { commandTimeoutMs: 2_000 }));
    try {
      await Promise.all(patient.map((c) => c.ping()));
      const key = `${prefix}:lock:{rl-noscript}`;
      const lock = new Redlock(patient, "rl-noscript", { prefix, ttlMs: 60_000, nodeTimeoutMs: 50 });
      // Masters 0 and 1 forget every script (as after a restart) and are paused: the attempt wins master 2 only and
      // gives up on the others. Resumed, they answer the acquire's EVALSHA with NOSCRIPT, and its EVAL retry grants
      // the lock to a token nobody holds: the release must come after that retry, not before it.
      await Promise.all([admins[0]?.script("FLUSH"), admins[1]?.script("FLUSH")]);
      await withPaused([0, 1], async () => {
        await expect(lock.tryAcquire()).rejects.toBeInstanceOf(RedisUnavailableError);
      });
      for (const i of [0, 1]) {
        const admin = admins[i] as RedisClient;
        await waitUntil(
          `master ${i}: the late acquire to run`,
          async () => (await admin.get(`${key}:fence`)) === "1",
          5_000,
        );
        await waitUntil(
          `master ${i}: the late grant to be released`,
          async () => (await admin.exists(key)) === 0,
          5_000,
        );
      }
      expect(await admins[2]?.exists(key)).toBe(0);
    } finally {
      for (const c of patient) c.disconnect();
    }
  });

  /** Pauses (SIGSTOP) masters `which` around `fn`, resumes them, and waits until they answer again. */
  async function withPaused<T>(which: number[], fn: () => Promise<T>): Promise<T> {
    const servers = which.map((i) => group.servers[i] as RedisServer);
    for (const s of servers) s.pause();
    try {
      return await fn();
    } finally {
      for (const s of servers) s.resume();
      for (const i of which) {
        await waitUntil(`master ${i} to answer again`, async () => (await admins[i]?.ping()) === "PONG", RECOVERY);
      }
    }
  }

  it("extend() with 2 of 3 masters paused: RedisUnavailableError, not LeaseLostError; the lease is still held", async () => {
    const lock = new Redlock(clients, "paused-extend", { prefix, ttlMs: 5_000, nodeTimeoutMs: 100 });
    const lease = await lock.acquire();
    const err = await withPaused([1, 2], () => lease.extend().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toMatch(/1 extended, 0 not held, 2 of 3 masters did not answer/);
    expect(lease.signal.aborted).toBe(false);
    for (const admin of admins) expect(await admin.get(`${prefix}:lock:{paused-extend}`)).toBe(lease.token);
    await lease.extend();
    expect(await lease.release()).toBe(true);
  });

  it("extend() reports the lease lost only when enough masters answer that the token is gone", async () => {
    const key = `${prefix}:lock:{gone-extend}`;
    const lock = new Redlock(clients, "gone-extend", { prefix, ttlMs: 5_000, nodeTimeoutMs: 100 });
    const lease = await lock.acquire();
    // One master definitely lost it, one is paused: a quorum may still hold the token -> unknown.
    await admins[0]?.del(key);
    const unknown = await withPaused([2], () => lease.extend().catch((e: unknown) => e));
    expect(unknown).toBeInstanceOf(RedisUnavailableError);
    expect(lease.signal.aborted).toBe(false);
    // Two masters answer that the token is gone: no quorum can hold it -> lost.
    await admins[1]?.del(key);
    const lost = await lease.extend().catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(LeaseLostError);
    expect(lost).toMatchObject({ reason: "not-held" });
    expect(lease.signal.aborted).toBe(true);
    expect(await lease.release()).toBe(false);
  });

  it("using(): a routine survives an extension that finds 2 of 3 masters paused (as Mutex does)", async () => {
    const observer = recordObserver();
    const lock = new Redlock(clients, "paused-using", { prefix, ttlMs: 3_000, observer });
    const extends_ = () => observer.ops.filter((o) => o.op === "extend").map((o) => o.outcome);
    /** Resolves once an extension reported from now on has an outcome in `outcomes`. */
    const nextExtend = (outcomes: string[]) =>
      observer.waitForOperation((o) => o.op === "extend" && outcomes.includes(o.outcome), {
        what: `an extension ${outcomes.join(" or ")}`,
        from: observer.ops.length,
        timeoutMs: 30_000,
      });
    const aborted = await lock.using(async (lease) => {
      // An automatic extension comes every ttlMs / 3 = 1 s; hold the pause until one has failed (or found it lost).
      await withPaused([1, 2], () => nextExtend(["error", "lost"]));
      if (!lease.signal.aborted) await nextExtend(["ok"]);
      return lease.signal.aborted;
    });
    expect(aborted).toBe(false);
    expect(extends_()).toContain("error");
    expect(extends_()).not.toContain("lost");
    expect(observer.events.filter((e) => e.type === "lease-lost")).toEqual([]);
    for (const admin of admins) expect(await admin.exists(`${prefix}:lock:{paused-using}`)).toBe(0);
  });

  it("still acquires with 1 of 3 masters killed; fails clearly within waitMs with 2 killed; recovers on restart", async () => {
    // nodeTimeoutMs leaves room for a loaded machine: the release below needs both live masters to answer in time.
    const lock = new Redlock(clients, "faults", { prefix, ttlMs: 2_000, nodeTimeoutMs: 300 });
    const [s0, s1] = group.servers as [RedisServer, RedisServer];
    await s0.kill();
    const one = await lock.acquire({ waitMs: 2_000 });
    expect(one.fence).toBeGreaterThan(0);
    expect(await one.release()).toBe(true);
    await s1.kill();
    const started = Date.now();
    const err = await lock.acquire({ waitMs: 500 }).catch((e: unknown) => e);
    const took = Date.now() - started;
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toMatch(/only 1 of 3 masters answered \(a quorum of 2 is needed\)/);
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(2_000);
    await expect(lock.tryAcquire()).rejects.toBeInstanceOf(RedisUnavailableError);
    await Promise.all([s0.restart(), s1.restart()]);
    const back = await eventually("a lease after the restart", () => lock.tryAcquire(), RECOVERY);
    expect(back.fence).toBeGreaterThan(one.fence);
    expect(await back.release()).toBe(true);
  });
});

describe("Redlock over 5 masters", () => {
  let group: RedisGroup;
  let clients: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(5, { leastPrivilege: true });
    clients = group.urls.map((u) => connect(u, { commandTimeoutMs: 1_000 }));
    await Promise.all(clients.map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await group.stop();
  });

  it("needs 3 of 5: works with 2 killed, fails with 3 killed", async () => {
    const lock = new Redlock(clients, "five", { prefix, ttlMs: 2_000, nodeTimeoutMs: 100 });
    const rival = new Redlock(clients, "five", { prefix, ttlMs: 2_000, nodeTimeoutMs: 100 });
    expect(lock.quorum).toBe(3);
    const first = await lock.acquire();
    expect(await rival.tryAcquire()).toBeNull();
    await first.release();
    await group.servers[0]?.kill();
    await group.servers[1]?.kill();
    const second = await lock.acquire({ waitMs: 2_000 });
    expect(second.fence).toBeGreaterThan(first.fence);
    expect(await rival.tryAcquire()).toBeNull();
    await second.release();
    await group.servers[2]?.kill();
    await expect(lock.acquire({ waitMs: 300 })).rejects.toBeInstanceOf(RedisUnavailableError);
  });
});
