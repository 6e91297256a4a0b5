import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { LeaseLostError, Mutex, Redlock, runOncePerTick, Semaphore, tickHistory } from "@coordis/lock";
import {
  eventually,
  type FaultProxy,
  type RedisGroup,
  type RedisServer,
  stallServer,
  startProxy,
  startRedis,
  startRedisGroup,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** How long the client may take to reconnect after the proxy heals; errors meanwhile mean "not yet". */
const RECOVERY = { timeoutMs: 8_000, intervalMs: 20, ignoreErrors: true };

/** Mutex and Semaphore when Redis does not answer: release, and aborting an attempt in flight. */
describe("locks when Redis does not answer", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  /** Reaches Redis through the fault proxy, with a short command timeout. */
  let redis: RedisClient;
  /** Unrestricted client straight to the server, to check keys from outside the code under test. */
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    proxy = await startProxy({ target: server });
    redis = connect(proxy.url, { commandTimeoutMs: 300 });
    admin = server.adminClient();
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(async () => {
    redis.disconnect();
    await proxy.close();
    await server.stop();
  });

  const locks = (name: string, ttlMs = 60_000, client = redis) => [
    { lock: new Mutex(client, name, { prefix, ttlMs }), key: `${prefix}:lock:{${name}}` },
    { lock: new Semaphore(client, name, { prefix, permits: 1, ttlMs }), key: `${prefix}:sem:{${name}}` },
  ];

  it("a release() that got no answer can be called again: the retry asks Redis and frees the lock (Mutex, Semaphore)", async () => {
    for (const { lock, key } of locks("release-retry")) {
      const lease = await lock.acquire();
      proxy.blackhole();
      await expect(lease.release(), key).rejects.toBeInstanceOf(RedisUnavailableError);
      expect(lease.signal.aborted, key).toBe(true);
      proxy.heal();
      // The unanswered release never reached Redis: the lock is still held, for a minute.
      expect(await admin.exists(key), key).toBe(1);
      // The retry is a real compare-and-delete, not a local "already released" false.
      const retried = await eventually(`${key}: a release that gets an answer`, () => lease.release(), RECOVERY);
      expect(retried, key).toBe(true);
      expect(await admin.exists(key), key).toBe(0);
      // Released once answered: a third call is local and false.
      expect(await lease.release(), key).toBe(false);
      const next = await lock.tryAcquire();
      expect(next, key).not.toBeNull();
      await next?.release();
    }
  });

  it("a second release() while the first is unanswered shares its outcome instead of answering false (Mutex, Semaphore)", async () => {
    for (const { lock, key } of locks("release-concurrent")) {
      const lease = await lock.acquire();
      proxy.blackhole();
      const first = lease.release();
      const second = lease.release();
      // Neither may claim the lease was already lost: the lock is still held in Redis.
      await expect(first, key).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(second, key).rejects.toBeInstanceOf(RedisUnavailableError);
      proxy.heal();
      expect(await admin.exists(key), key).toBe(1);
      // Answered: two calls at once both learn that it was released, and the lock is free.
      await eventually(`${key}: Redis answers again`, () => redis.ping(), RECOVERY);
      const [a, b] = await Promise.all([lease.release(), lease.release()]);
      expect([a, b], key).toEqual([true, true]);
      expect(await admin.exists(key), key).toBe(0);
      expect(await lease.release(), key).toBe(false);
    }
  });

  it("an extension answered only after its own validity (the event loop blocked past the TTL) is lost, not extended", async () => {
    // A command timeout longer than the stall: the reply, not the client's timer, decides.
    const patient = server.client({ commandTimeoutMs: 5_000 });
    for (const { lock, key } of locks("late-extend", 400, patient)) {
      // The client's first call of a script can take an extra turn of the event loop: have it made already.
      const warm = await lock.acquire();
      await warm.extend();
      await warm.release();
      // Unwatched, the lease learns of its deadline from the reply; watched, its deadline timer fires first.
      for (const watched of [false, true]) {
        const lease = await lock.acquire();
        if (watched) expect(lease.signal.aborted, key).toBe(false);
        const pending = lease.extend().then(
          () => "extended",
          (err: unknown) => err,
        );
        // The extension leaves at the end of this tick (corked writes); then the process stalls for 600 ms, past the
        // extension's 400 ms, as a GC pause or a blocking call would, before it can read the reply.
        await new Promise((resolve) => setImmediate(resolve));
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
        const outcome = await pending;
        expect(outcome, `${key} watched=${watched}`).toBeInstanceOf(LeaseLostError);
        expect(lease.signal.aborted, key).toBe(true);
        expect(lease.remainingMs(), key).toBe(0);
        // Redis' TTL from the extension has run out as well: the lock is free.
        expect(await admin.exists(key), key).toBe(0);
        expect(await lease.release(), key).toBe(false);
      }
    }
  });

  it("runOncePerTick: a claim answered after its lease's validity is undone, fn not called; the tick runs next call", async () => {
    const patient = server.client({ commandTimeoutMs: 5_000 });
    await runOncePerTick(patient, "late-claim", 0, () => 0, { prefix }); // the claim script is known to this client
    let calls = 0;
    const fn = () => {
      calls++;
      return "done";
    };
    // The server stalls 400 ms on the client's own connection: the claim queued behind it is answered after its
    // 200 ms lease (minus drift) has passed on the client.
    const stalled = stallServer(patient, 400);
    const late = await runOncePerTick(patient, "late-claim", 1, fn, { prefix, ttlMs: 200 }).catch((e: unknown) => e);
    await stalled;
    expect(late).toBeInstanceOf(LeaseLostError);
    expect(late).toMatchObject({ reason: "expired" });
    expect(calls).toBe(0);
    expect(await admin.exists(`${prefix}:tick:{late-claim}:t:1`)).toBe(0);
    expect(await runOncePerTick(patient, "late-claim", 1, fn, { prefix, ttlMs: 200 })).toMatchObject({
      ran: true,
      state: "ok",
      result: "done",
    });
    expect(calls).toBe(1);
    expect(await admin.exists(`${prefix}:tick:{late-claim}:t:1`)).toBe(1);
  });

  it("runOncePerTick: Redis not answering as fn returns does not lose the outcome: it is recorded once Redis answers", async () => {
    const record = `${prefix}:tick:{finish-outage}:t:1`;
    // The outage starts as fn returns and ends once the first attempt to record the outcome has failed.
    let failedAttempts = 0;
    const observer = {
      onOperation(e: { op: string; outcome: string }) {
        if (e.op !== "release" || e.outcome !== "error") return;
        failedAttempts++;
        proxy.heal();
      },
    };
    const run = await runOncePerTick(
      redis,
      "finish-outage",
      1,
      () => {
        proxy.blackhole();
        return "done";
      },
      { prefix, ttlMs: 10_000, observer },
    );
    expect(failedAttempts).toBeGreaterThan(0);
    expect(run).toMatchObject({ ran: true, state: "ok", result: "done" });
    expect(await admin.hget(record, "state")).toBe("ok");
    const history = await tickHistory(admin, "finish-outage", { prefix });
    expect(history.map((h) => [h.tick, h.ok])).toEqual([[1, true]]);
  });

  it("runOncePerTick: a record attempt that timed out but ran is not taken for a lost tick when tried again", async () => {
    const patient = server.client({ commandTimeoutMs: 300 });
    try {
      await runOncePerTick(patient, "finish-stall", 0, () => 0, { prefix }); // the scripts are known to this client
      let stalled: Promise<unknown> | undefined;
      let failedAttempts = 0;
      const observer = {
        onOperation(e: { op: string; outcome: string }) {
          if (e.op === "release" && e.outcome === "error") failedAttempts++;
        },
      };
      // fn returns while the server is busy for 1.2 s: the finish behind the stall times out on the client but runs
      // once the stall ends; a later attempt finds the tick already recorded by this run.
      const run = await runOncePerTick(
        patient,
        "finish-stall",
        1,
        () => {
          stalled = stallServer(patient, 1_200).catch(() => "timed out");
          return "done";
        },
        { prefix, ttlMs: 10_000, observer },
      );
      expect(await stalled).toBe("timed out");
      expect(failedAttempts).toBeGreaterThan(0);
      expect(run).toMatchObject({ ran: true, state: "ok", result: "done" });
      const history = await tickHistory(admin, "finish-stall", { prefix });
      expect(history.filter((h) => h.tick === 1).map((h) => h.ok)).toEqual([true]);
    } finally {
      patient.disconnect();
    }
  });

  it("aborting while an attempt waits on a stalled server rejects at once; what the attempt wins is released", async () => {
    for (const { lock, key } of locks("abort-in-flight")) {
      const fenceKey = `${key}:fence`;
      const fenceBefore = Number((await admin.get(fenceKey)) ?? "0");
      // A script that keeps the server busy for 200 ms, sent first on the lock's own connection: the acquire queued
      // behind it is answered after the stall (its grant then released by the abort), or, on a loaded machine, times
      // out (then freed by the compare-and-delete queued behind it). Either way nothing stays held.
      let stallEnded = false;
      const stalled = stallServer(redis, 200).then(
        () => {
          stallEnded = true;
        },
        () => {
          stallEnded = true;
        },
      );
      const ctl = new AbortController();
      const pending = lock.acquire({ waitMs: 10_000, signal: ctl.signal });
      ctl.abort(new Error("shutdown"));
      await expect(pending, key).rejects.toThrow("shutdown");
      expect(stallEnded, key).toBe(false);
      await stalled;
      // The acquire did reach Redis (its fence was taken), and the grant was released, not left for a minute.
      await waitUntil(`${key}: the attempt to have run`, async () => Number(await admin.get(fenceKey)) > fenceBefore);
      await waitUntil(`${key}: the won lease to be released`, async () => (await admin.exists(key)) === 0);
      const next = await lock.tryAcquire();
      expect(next, key).not.toBeNull();
      await next?.release();
    }
  });
});

/** Redlock over 3 masters, each reached through a fault proxy. */
describe("Redlock release when masters do not answer", () => {
  let group: RedisGroup;
  let proxies: FaultProxy[];
  let clients: RedisClient[];
  /** Unrestricted clients straight to each master. */
  let admins: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(3, { leastPrivilege: true });
    proxies = await Promise.all(group.servers.map((target) => startProxy({ target })));
    clients = proxies.map((p) => connect(p.url, { commandTimeoutMs: 1_000 }));
    admins = group.servers.map((s) => s.adminClient());
    await Promise.all([...clients, ...admins].map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(proxies.map((p) => p.close()));
    await group.stop();
  });

  it("with 2 of 3 masters silent, release() is unknown (RedisUnavailableError), not false; a retry releases the rest", async () => {
    const key = `${prefix}:lock:{silent-release}`;
    const lock = new Redlock(clients, "silent-release", { prefix, ttlMs: 60_000, nodeTimeoutMs: 200 });
    const lease = await lock.acquire();
    proxies[1]?.blackhole();
    proxies[2]?.blackhole();
    const err = await lease.release().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toMatch(/1 released, 0 not held, 2 of 3 masters did not answer/);
    for (const p of proxies) p.heal();
    // The two silent masters never got the release: they still hold the lease's token, for a minute.
    expect(await Promise.all(admins.map((a) => a.get(key)))).toEqual([null, lease.token, lease.token]);
    await Promise.all(clients.map((c, i) => eventually(`master ${i} reachable again`, () => c.ping(), RECOVERY)));
    // The retry counts the master the first call released, and releases the two others.
    expect(await eventually("a release that gets an answer", () => lease.release(), RECOVERY)).toBe(true);
    expect(await Promise.all(admins.map((a) => a.exists(key)))).toEqual([0, 0, 0]);
    expect(await lease.release()).toBe(false);
  });
});

/** The README's advice for fences that survive a restart: `appendonly yes` with `appendfsync always`. */
describe("locks across a SIGKILL and restart of a Redis with appendfsync always", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true, appendOnly: true, config: { appendfsync: "always" } });
    redis = server.client({ commandTimeoutMs: 1_000 });
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a lease held at the kill still excludes others after the restart, and fences keep increasing", async () => {
    const held = [
      await new Mutex(redis, "restart", { prefix, ttlMs: 60_000 }).acquire(),
      await new Semaphore(redis, "restart", { prefix, permits: 1, ttlMs: 60_000 }).acquire(),
    ];
    await server.restart();
    const rivals = [
      new Mutex(redis, "restart", { prefix, ttlMs: 60_000 }),
      new Semaphore(redis, "restart", { prefix, permits: 1, ttlMs: 60_000 }),
    ];
    for (const [i, rival] of rivals.entries()) {
      const lease = held[i];
      // The acknowledged acquisition was fsynced before its reply: the restarted server still has it.
      const answered = await eventually(
        `${rival.name} #${i} answered again`,
        async () => ({ lease: await rival.tryAcquire() }),
        RECOVERY,
      );
      expect(answered.lease).toBeNull();
      await lease?.extend();
      expect(await lease?.release()).toBe(true);
      const next = await rival.acquire({ waitMs: 0 });
      expect(next.fence).toBeGreaterThan(lease?.fence ?? Number.POSITIVE_INFINITY);
      await next.release();
    }
  });
});
