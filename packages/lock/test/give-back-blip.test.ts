import { connect, DurabilityError, type RedisClient } from "@coordis/core";
import { Mutex, Semaphore } from "@coordis/lock";
import {
  type FaultProxy,
  type RedisServer,
  stallServer,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** An ioredis command as `sendCommand` gets it. */
type Command = { name: string; promise: Promise<unknown> };
/** ioredis' `sendCommand`, seen on a client instance. */
type Sender = { sendCommand(command: Command, ...rest: unknown[]): unknown };

/** Calls `seen` with the name of every command `client` writes (and the command), just before it is written. */
function onCommand(client: RedisClient, seen: (name: string, command: Command) => void): void {
  const target = client as unknown as Sender;
  const original = target.sendCommand;
  target.sendCommand = function (this: unknown, command, ...rest) {
    seen(command.name.toLowerCase(), command);
    return original.call(this, command, ...rest);
  };
}

/**
 * Cuts `proxy` (a partition: bytes discarded, commands time out) just before `client` writes the first script call
 * after a `WAIT`: the give-back of a grant its replicas did not confirm. That call never reaches Redis.
 */
function partitionGiveBack(client: RedisClient, proxy: FaultProxy): void {
  let waited = false;
  let cut = false;
  onCommand(client, (name) => {
    if (name === "wait") waited = true;
    else if (waited && !cut && (name === "eval" || name === "evalsha")) {
      cut = true;
      proxy.blackhole();
    }
  });
}

describe("a lock grant nobody holds is given back until Redis answers, not once", () => {
  let server: RedisServer;
  let admin: RedisClient;
  let proxy: FaultProxy;
  let client: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    admin = server.adminClient();
    await admin.ping();
  });
  afterEach(async () => {
    client?.disconnect();
    await proxy?.close();
  });
  afterAll(async () => {
    await server.stop();
  });

  async function viaProxy(): Promise<void> {
    proxy = await startProxy({ target: server });
    client = connect(proxy.url, { commandTimeoutMs: 300 });
    client.on("error", () => {});
    // Scripts cached, so the first command after the acquire is the give-back.
    await (await new Mutex(client, "warm", { prefix }).acquire()).release();
    await (await new Semaphore(client, "warm", { prefix, permits: 1 }).acquire()).release();
  }

  it("Mutex: a grant won for an aborted acquire, whose release is lost in a blip, is released once Redis answers", async () => {
    await viaProxy();
    const mutex = new Mutex(client, "aborted", { prefix, ttlMs: 20_000 });
    const key = `${prefix}:lock:{aborted}`;
    // The acquire waits behind a stall; the caller aborts meanwhile; the grant comes back and is released, and that
    // release is lost in a partition.
    const controller = new AbortController();
    let aborted = false;
    let cut: Command | undefined;
    onCommand(client, (name, command) => {
      if (name !== "eval" && name !== "evalsha") return;
      if (!aborted) {
        // The acquire is written (and waits behind the stall): the caller gives up now.
        aborted = true;
        setImmediate(() => controller.abort(new Error("caller gave up")));
      } else if (cut === undefined) {
        cut = command;
        proxy.blackhole();
      }
    });
    const stalled = stallServer(admin, 200);
    const acquiring = mutex.acquire({ signal: controller.signal }).catch((e: unknown) => e);
    expect(await acquiring).toMatchObject({ message: "caller gave up" });
    await stalled;
    await waitUntil("the grant's release sent", () => cut !== undefined);
    // It times out in the partition: no answer.
    const outcome = await (cut as Command | undefined)?.promise.then(
      () => "answered",
      () => "failed",
    );
    expect(outcome).toBe("failed");
    // The grant was made (behind the stall), and its release was lost: held by nobody.
    expect(await admin.exists(key)).toBe(1);
    proxy.heal();
    // Freed long before its 20 s time to live.
    await waitUntil("the aborted acquire's grant released", async () => (await admin.exists(key)) === 0, 5_000);
  });

  it("Mutex: a grant not confirmed durable, whose give-back is lost in a blip, is given back once Redis answers", async () => {
    await viaProxy();
    // No replica: WAIT answers 0 after 100 ms, the grant is not confirmed and is given back.
    const mutex = new Mutex(client, "undurable", {
      prefix,
      ttlMs: 20_000,
      durability: { replicas: 1, timeoutMs: 100 },
    });
    const key = `${prefix}:lock:{undurable}`;
    partitionGiveBack(client, proxy);
    expect(await mutex.acquire({ waitMs: 0 }).catch((e: unknown) => e)).toBeInstanceOf(DurabilityError);
    // acquire() settled after the give-back failed by its timeout: the grant is still held, by nobody.
    expect(await admin.exists(key)).toBe(1);
    proxy.heal();
    await waitUntil("the unconfirmed grant given back", async () => (await admin.exists(key)) === 0, 5_000);
  });

  it("Semaphore: a permit not confirmed durable, whose give-back is lost in a blip, is given back once Redis answers", async () => {
    await viaProxy();
    const semaphore = new Semaphore(client, "undurable", {
      prefix,
      permits: 2,
      ttlMs: 20_000,
      durability: { replicas: 1, timeoutMs: 100 },
    });
    const key = `${prefix}:sem:{undurable}`;
    partitionGiveBack(client, proxy);
    expect(await semaphore.acquire({ waitMs: 0 }).catch((e: unknown) => e)).toBeInstanceOf(DurabilityError);
    expect(await admin.zcard(key)).toBe(1);
    proxy.heal();
    await waitUntil("the unconfirmed permit given back", async () => (await admin.zcard(key)) === 0, 5_000);
  });
});

describe("a lease's signal while release() is out", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("aborts when release() is called, before Redis answered it", async () => {
    const client = server.client();
    const lease = await new Mutex(client, "signal", { prefix }).acquire();
    const signal = lease.signal;
    const seen: boolean[] = [];
    // A listener that releases too (cleanup on any end of the lease) shares the release in flight.
    let fromListener: Promise<boolean> | undefined;
    signal.addEventListener("abort", () => {
      seen.push(true);
      fromListener = lease.release();
    });
    server.pause();
    let releasing: Promise<unknown> | undefined;
    try {
      releasing = lease.release().catch((e: unknown) => e);
      // Redis answers nothing while paused: the lease is being given up, so code watching the signal stops now.
      expect(signal.aborted).toBe(true);
      expect(seen).toEqual([true]);
      expect(signal.reason).toMatchObject({ name: "AbortError" });
      expect(lease.remainingMs()).toBe(0);
    } finally {
      server.resume();
    }
    expect(await releasing).toBe(true);
    expect(await fromListener).toBe(true);
    expect(signal.aborted).toBe(true);
  });
});
