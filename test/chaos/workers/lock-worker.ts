// Lock checker worker: repeatedly acquires one lock (Mutex or Redlock), reports the lease (fence, when it was
// requested and obtained, until when it is locally valid), performs a fenced read-modify-write on the parent's
// register (begin = fenced read, end = fenced write of read + 1), and releases. It deliberately does not look at
// lease.signal before writing: the register's fence check is what must protect the data.
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { type LockBase, Mutex, Redlock } from "@coordis/lock";
import type { LockWorkerConfig } from "../scenarios/fenced-lock.js";
import { ask, config, connected, prng, stopping, tell, tellFlushed } from "./ipc.js";

const cfg = await config<LockWorkerConfig>();
const clients: RedisClient[] = cfg.urls.map((url) => connect(url, { commandTimeoutMs: cfg.commandTimeoutMs }));
const lock: LockBase =
  cfg.mode === "mutex"
    ? new Mutex(clients[0] as RedisClient, cfg.name, {
        prefix: cfg.prefix,
        ttlMs: cfg.ttlMs,
        ...(cfg.durability === undefined ? {} : { durability: cfg.durability }),
      })
    : new Redlock(clients, cfg.name, { prefix: cfg.prefix, ttlMs: cfg.ttlMs, nodeTimeoutMs: cfg.nodeTimeoutMs });
const random = prng(cfg.seed);

async function run(): Promise<void> {
  while (!stopping()) {
    const reqAt = Date.now();
    let lease: Awaited<ReturnType<LockBase["acquire"]>>;
    try {
      lease = await lock.acquire({ waitMs: cfg.waitMs });
    } catch (err) {
      tell({ type: "acquire-failed", code: String((err as { code?: string }).code ?? (err as Error).name) });
      await sleep(5);
      continue;
    }
    const gotAt = Date.now();
    const validUntil = gotAt + lease.remainingMs();
    // Flushed like "releasing": a worker killed right after acquiring still holds a lease until it expires, and the
    // checker must see that lease to find another one granted within it.
    await tellFlushed({ type: "acquired", fence: lease.fence, reqAt, gotAt, validUntil });
    const begin = await ask({ type: "begin", fence: lease.fence });
    if (begin.accepted === true) {
      await sleep(Math.floor(random() * cfg.holdMaxMs)); // the critical section's "work"
      await ask({ type: "end", fence: lease.fence, value: (begin.value as number) + 1 });
    }
    const releaseAt = Date.now();
    // Reported, and written to the IPC pipe, before the release is sent: a worker killed after its release reached
    // Redis but before "released" reached the parent would otherwise look like a holder whose lease was still
    // valid, and the next holder like an overlap (a false exclusion violation).
    await tellFlushed({ type: "releasing", fence: lease.fence, releaseAt });
    let released: string;
    try {
      released = String(await lease.release());
    } catch (err) {
      released = String((err as { code?: string }).code ?? "error");
    }
    tell({ type: "released", fence: lease.fence, releaseAt, released });
  }
}

await connected(clients);
tell({ type: "ready" });
await run();
for (const c of clients) c.disconnect();
process.disconnect?.();
