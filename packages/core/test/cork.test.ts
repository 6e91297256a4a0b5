import { createHash } from "node:crypto";
import { CORK_MAX_COMMANDS, connect, corkUntilTickEnd, defineScript, type RedisClient, runScript } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

/** Appends ARGV[1] to a list and returns the list's length: the order of the calls as Redis ran them. */
const APPEND_SOURCE = "return redis.call('RPUSH', KEYS[1], ARGV[1])";
const appendScript = defineScript<["list"], ["item"], number>({
  name: "test/cork-append",
  source: APPEND_SOURCE,
  keys: ["list"],
  args: ["item"],
  sha1: createHash("sha1").update(APPEND_SOURCE).digest("hex"),
});

interface Syscalls {
  /** `write` / `writev` system calls the socket made (Node's `_write` / `_writev`). */
  syscalls: number;
  /** Commands handed to the socket (`socket.write` calls). */
  commands: number;
}

/**
 * Counts, on a real client's socket, the commands handed to it and the system calls that carried them while `fn`
 * runs. The spies only observe: every byte still goes to the real server.
 */
async function countSyscalls<T>(client: RedisClient, fn: () => Promise<T>): Promise<{ result: T } & Syscalls> {
  type Socket = Record<"write" | "_write" | "_writev", (...args: unknown[]) => unknown>;
  const socket = (client as unknown as { stream: Socket }).stream;
  const original = { write: socket.write, _write: socket._write, _writev: socket._writev };
  const counts: Syscalls = { syscalls: 0, commands: 0 };
  socket.write = function (this: unknown, ...args: unknown[]) {
    counts.commands++;
    return original.write.apply(this, args);
  };
  for (const name of ["_write", "_writev"] as const) {
    socket[name] = function (this: unknown, ...args: unknown[]) {
      counts.syscalls++;
      return original[name].apply(this, args);
    };
  }
  try {
    return { result: await fn(), ...counts };
  } finally {
    Object.assign(socket, original);
  }
}

// The admin URL: the test script and RPUSH are not among the commands the least-privilege user is granted.
describe("write coalescing (corkUntilTickEnd) on the shared standalone server", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisAdminRedisUrl"));
    // Run once up front, so the counts below are EVALSHAs only (no NOSCRIPT fallback doubling them) and none is a
    // script's first call on this client (which goes out alone, see the core README).
    await runScript(redis, appendScript, [`${prefix}:{cork}:warm`], ["w"]);
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("50 script calls made in one tick leave in chunks of CORK_MAX_COMMANDS per system call, replies in call order", async () => {
    const list = `${prefix}:{cork}:order`;
    const { result, syscalls, commands } = await countSyscalls(redis, () =>
      Promise.all(Array.from({ length: 50 }, (_, i) => runScript(redis, appendScript, [list], [String(i)]))),
    );
    expect(commands).toBe(50);
    expect(CORK_MAX_COMMANDS).toBeLessThan(50);
    expect(syscalls).toBe(Math.ceil(50 / CORK_MAX_COMMANDS));
    expect(result).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(await redis.lrange(list, 0, -1)).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
  });

  it("plain commands written in the same tick share the system call and keep their place in the order", async () => {
    const list = `${prefix}:{cork}:mixed`;
    const { result, syscalls } = await countSyscalls(redis, () =>
      Promise.all([
        runScript(redis, appendScript, [list], ["a"]),
        redis.rpush(list, "b"),
        runScript(redis, appendScript, [list], ["c"]),
        redis.lrange(list, 0, -1),
      ]),
    );
    expect(syscalls).toBe(1);
    expect(result).toEqual([1, 2, 3, ["a", "b", "c"]]);
  });

  it("a lone call is written within its tick: the next tick's calls are a second system call", async () => {
    const list = `${prefix}:{cork}:ticks`;
    const { syscalls } = await countSyscalls(redis, async () => {
      const first = runScript(redis, appendScript, [list], ["1"]);
      await new Promise<void>((resolve) => setImmediate(resolve));
      const second = runScript(redis, appendScript, [list], ["2"]);
      return Promise.all([first, second]);
    });
    expect(syscalls).toBe(2);
  });

  it("without corking every command is its own system call (the spy can tell the difference)", async () => {
    const list = `${prefix}:{cork}:plain`;
    const { syscalls, commands } = await countSyscalls(redis, () =>
      Promise.all(Array.from({ length: 10 }, (_, i) => redis.rpush(list, String(i)))),
    );
    expect(commands).toBe(10);
    expect(syscalls).toBe(10);
  });

  it("a client that is not connected yet is left alone (ioredis' offline queue) and its calls still run", async () => {
    const lazy = connect(inject("coordisAdminRedisUrl"), { redisOptions: { lazyConnect: true } });
    try {
      corkUntilTickEnd(lazy);
      const list = `${prefix}:{cork}:lazy`;
      expect(await runScript(lazy, appendScript, [list], ["x"])).toBe(1);
    } finally {
      lazy.disconnect();
    }
  });
});
