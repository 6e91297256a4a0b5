import { CORK_MAX_COMMANDS, connect, type RedisClient, RedisUnavailableError, ScriptError } from "@coordis/core";
import { type Lease, Redlock } from "@coordis/lock";
import {
  countCommands,
  eventually,
  type RedisGroup,
  type RedisServer,
  startRedisGroup,
  testPrefix,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

const prefix = testPrefix();

/**
 * Counts the system calls (`write` / `writev`: Node's `_write` / `_writev`) that carried real clients' commands
 * while `fn` runs. The spies only observe: every byte still goes to the real servers.
 */
async function countWrites<T>(
  clients: readonly RedisClient[],
  fn: () => Promise<T>,
): Promise<{ result: T; writes: number[] }> {
  type Socket = Record<"_write" | "_writev", (...args: unknown[]) => unknown>;
  const writes = clients.map(() => 0);
  const restore = clients.map((client, i) => {
    const socket = (client as unknown as { stream: Socket }).stream;
    const original = { _write: socket._write, _writev: socket._writev };
    for (const name of ["_write", "_writev"] as const) {
      socket[name] = function (this: unknown, ...args: unknown[]) {
        writes[i] = (writes[i] ?? 0) + 1;
        return original[name].apply(this, args);
      };
    }
    return () => {
      Object.assign(socket, original);
    };
  });
  try {
    return { result: await fn(), writes };
  } finally {
    for (const undo of restore) undo();
  }
}

/**
 * Loads the scripts and makes the clients know them, so every call counted below goes out at once as an EVALSHA: a
 * script's first call on a client goes out alone (and the first NOSCRIPT the client meets makes it check the others
 * once more; see the core README), hence two rounds.
 */
async function warm(clients: RedisClient[]): Promise<void> {
  for (let i = 0; i < 2; i++) await (await new Redlock(clients, "warm", { prefix }).acquire()).release();
}

describe("Redlock write coalescing over 3 masters", () => {
  let group: RedisGroup;
  let clients: RedisClient[];
  /** Unrestricted clients of each master, to seed and inspect state outside the primitive under test. */
  let admins: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(3, { leastPrivilege: true });
    clients = group.urls.map((u) => connect(u, { commandTimeoutMs: 1_000 }));
    admins = group.adminUrls.map((u) => connect(u, { commandTimeoutMs: 1_000 }));
    await Promise.all([...clients, ...admins].map((c) => c.ping()));
    await warm(clients);
  });
  afterAll(async () => {
    for (const c of [...clients, ...admins]) c.disconnect();
    await group.stop();
  });

  const lockKey = (name: string) => `${prefix}:lock:{${name}}`;

  it("writes 50 concurrent acquires (then releases) to each master in chunks of CORK_MAX_COMMANDS per system call; each caller gets its own reply", async () => {
    // 48 different locks plus two callers on one contended lock, all in one event-loop turn.
    const locks = Array.from({ length: 48 }, (_, i) => new Redlock(clients, `c${i}`, { prefix, ttlMs: 5_000 }));
    const first = new Redlock(clients, "contended", { prefix, ttlMs: 5_000 });
    const second = new Redlock(clients, "contended", { prefix, ttlMs: 5_000 });
    const all = [...locks, first, second];
    const acquired = await countCommands(group.servers, () =>
      countWrites(clients, () => Promise.all(all.map((lock) => lock.tryAcquire()))),
    );
    // Every call reached every master (one EVALSHA each, no fence round: fresh counters agree)...
    expect(acquired.sent).toEqual({ evalsha: 150 });
    // ...in ceil(50 / CORK_MAX_COMMANDS) system calls per master (not 50).
    const chunks = Math.ceil(50 / CORK_MAX_COMMANDS);
    expect(acquired.result.writes).toEqual([chunks, chunks, chunks]);
    const leases = acquired.result.result;
    // The first caller on the contended lock won it on every master, the second found it busy: its own reply.
    expect(leases[48]).not.toBeNull();
    expect(leases[49]).toBeNull();
    const held = leases.filter((l): l is Lease => l !== null);
    expect(held).toHaveLength(49);
    expect(new Set(held.map((l) => l.token)).size).toBe(49);
    for (const lease of held) expect(lease.fence).toBe(1);
    for (const admin of admins) {
      expect(await admin.get(lockKey("c7"))).toBe(held[7]?.token);
      expect(await admin.get(lockKey("contended"))).toBe(held[48]?.token);
    }

    const released = await countCommands(group.servers, () =>
      countWrites(clients, () => Promise.all(held.map((lease) => lease.release()))),
    );
    expect(released.sent).toEqual({ evalsha: 147 });
    expect(released.result.writes).toEqual([chunks, chunks, chunks]);
    expect(released.result.result).toEqual(held.map(() => true));
    for (const admin of admins) {
      expect(await admin.exists(...held.map((l) => lockKey(l.name)))).toBe(0);
    }
  });

  it("gives each caller of a shared write its own error: one lock's failure does not touch the others", async () => {
    // The "broken" lock's fence counter is not an integer on masters 0 and 1: its acquire script fails there after
    // its SET (Redis does not roll scripts back), so that caller must fail and release what it took.
    const brokenFence = `${lockKey("broken")}:fence`;
    await admins[0]?.set(brokenFence, "not-a-number");
    await admins[1]?.set(brokenFence, "not-a-number");
    const locks = Array.from({ length: 20 }, (_, i) => new Redlock(clients, `e${i}`, { prefix, ttlMs: 5_000 }));
    const broken = new Redlock(clients, "broken", { prefix, ttlMs: 5_000 });
    const { result: outcomes, writes } = await countWrites(clients, () =>
      Promise.allSettled([...locks.slice(0, 10), broken, ...locks.slice(10)].map((lock) => lock.tryAcquire())),
    );
    // Per master: the acquire round's 21 commands in ceil(21 / CORK_MAX_COMMANDS) writes, one for the broken
    // caller's release round.
    const acquireWrites = Math.ceil(21 / CORK_MAX_COMMANDS) + 1;
    expect(writes).toEqual([acquireWrites, acquireWrites, acquireWrites]);
    const failed = outcomes[10] as PromiseRejectedResult;
    expect(failed.status).toBe("rejected");
    // Two of three masters refused the script: no quorum can grant it, a definite refusal (not an outage).
    expect(failed.reason).toBeInstanceOf(ScriptError);
    expect((failed.reason as ScriptError).script).toBe("lock/acquire");
    const others = outcomes.filter((_, i) => i !== 10);
    expect(others.every((o) => o.status === "fulfilled" && o.value !== null)).toBe(true);
    // The failed caller released every master, the token it set on masters 0 and 1 included.
    for (const admin of admins) expect(await admin.exists(lockKey("broken"))).toBe(0);
    const leases = others.map((o) => (o as PromiseFulfilledResult<Lease>).value);
    expect(await Promise.all(leases.map((l) => l.release()))).toEqual(leases.map(() => true));
  });

  it("a connection cut off mid-answer: unanswered callers fail as an unknown outcome and free what they may hold", async () => {
    // One master (quorum 1), so a caller whose acquire got no answer fails. Its socket delivers the first half of
    // the first chunk of replies, then dies: ioredis settles the answered acquires, the rest fail by their command
    // timeout (not re-sent). Those may have run: each failed caller releases its token, and the release goes out
    // once the client has reconnected.
    const client = connect(group.urls[0] as string, { commandTimeoutMs: 1_000 });
    const admin = admins[0] as RedisClient;
    try {
      await client.ping();
      await warm([client]);
      type Emitter = { emit: (event: string, ...args: unknown[]) => boolean; destroy: () => void };
      const socket = (client as unknown as { stream: Emitter }).stream;
      const emit = socket.emit;
      socket.emit = function (this: unknown, event: string, ...args: unknown[]) {
        if (event !== "data") return emit.call(this, event, ...args);
        socket.emit = emit;
        const chunk = args[0] as Buffer;
        emit.call(this, event, chunk.subarray(0, Math.floor(chunk.length / 2)));
        socket.destroy();
        return true;
      };
      const locks = Array.from({ length: 40 }, (_, i) => new Redlock([client], `cut${i}`, { prefix, ttlMs: 60_000 }));
      const outcomes = await Promise.allSettled(locks.map((lock) => lock.tryAcquire()));
      const held = outcomes.flatMap((o) => (o.status === "fulfilled" && o.value !== null ? [o.value] : []));
      const failed = outcomes.flatMap((o, i) => (o.status === "rejected" ? [{ i, reason: o.reason as Error }] : []));
      expect(held.length).toBeGreaterThan(0);
      expect(failed.length).toBeGreaterThan(0);
      expect(held.length + failed.length).toBe(40);
      for (const { reason } of failed) {
        expect(reason).toBeInstanceOf(RedisUnavailableError);
        // Not ScriptError ("Redis refused"): the acquire may have run.
        expect(reason.cause).toBeInstanceOf(RedisUnavailableError);
      }
      // No phantom lease is left for a minute: every failed caller's release reached the master.
      await vi.waitFor(async () => expect(await admin.exists(...failed.map(({ i }) => lockKey(`cut${i}`)))).toBe(0), {
        timeout: 5_000,
        interval: 20,
      });
      for (const lease of held) expect(await admin.get(lockKey(lease.name))).toBe(lease.token);
      expect(await Promise.all(held.map((l) => l.release()))).toEqual(held.map(() => true));
    } finally {
      client.disconnect();
    }
  });

  it("with one master stopped, every concurrent caller still gets a lease from the two others, then recovers", async () => {
    const stopped = group.servers[2] as RedisServer;
    const locks = Array.from(
      { length: 20 },
      // 500 ms per master: a stall of a loaded machine must not make a live master miss the round (one write each).
      (_, i) => new Redlock(clients, `s${i}`, { prefix, ttlMs: 2_000, nodeTimeoutMs: 500 }),
    );
    await stopped.kill();
    try {
      const { result: leases, writes } = await countWrites(clients.slice(0, 2), () =>
        Promise.all(locks.map((lock) => lock.tryAcquire())),
      );
      expect(writes).toEqual([Math.ceil(20 / CORK_MAX_COMMANDS), Math.ceil(20 / CORK_MAX_COMMANDS)]);
      expect(leases.every((l) => l !== null)).toBe(true);
      const held = leases as Lease[];
      expect(new Set(held.map((l) => l.token)).size).toBe(20);
      for (const admin of admins.slice(0, 2)) {
        expect(await admin.get(lockKey("s3"))).toBe(held[3]?.token);
      }
      expect(await Promise.all(held.map((l) => l.release()))).toEqual(held.map(() => true));
      for (const admin of admins.slice(0, 2)) expect(await admin.exists(...held.map((l) => lockKey(l.name)))).toBe(0);
    } finally {
      await stopped.restart();
    }
    // Back to three masters: the corked writes work on the reconnected client too.
    const lease = await eventually("a lease after the master restarted", () => locks[0]?.tryAcquire(), {
      timeoutMs: 8_000,
      intervalMs: 50,
      ignoreErrors: true,
    });
    expect(await lease.release()).toBe(true);
  });
});
