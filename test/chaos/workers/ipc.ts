// Worker side of the chaos IPC: receive the configuration, ask the parent a question and await its reply, react to
// "stop".
import type { WorkerMessage } from "../lib/workers.js";

let nextId = 1;
const waiting = new Map<number, (reply: WorkerMessage) => void>();
let stopRequested = false;
let onStop: () => void = () => {};
const stopRequest = new Promise<void>((resolve) => {
  onStop = resolve;
});
let onConfig: (config: unknown) => void = () => {};
const configured = new Promise<unknown>((resolve) => {
  onConfig = resolve;
});
const commandHandlers: Array<(msg: WorkerMessage) => void> = [];

process.on("message", (raw) => {
  const msg = raw as WorkerMessage;
  if (msg.type === "reply") {
    const id = msg.id as number;
    const resolve = waiting.get(id);
    waiting.delete(id);
    resolve?.(msg);
    return;
  }
  if (msg.type === "config") {
    onConfig(msg.config);
    return;
  }
  if (msg.type === "stop") {
    stopRequested = true;
    onStop();
  }
  for (const h of commandHandlers) h(msg);
});
// The parent went away (or closed the channel): nothing left to report to.
process.on("disconnect", () => process.exit(0));

/**
 * This worker's configuration: says "loaded" (every module imported, so the process is ready to run) and resolves
 * with the `config` the parent sends back. The parent may spawn workers while it still starts its servers.
 */
export function config<T>(): Promise<T> {
  tell({ type: "loaded" });
  return configured as Promise<T>;
}

/** Whether the parent asked this worker to stop. */
export function stopping(): boolean {
  return stopRequested;
}

/** Resolves when the parent asks this worker to stop. */
export function stopped(): Promise<void> {
  return stopRequest;
}

/** Registers a handler for the parent's messages other than replies and the configuration. */
export function onCommand(handler: (msg: WorkerMessage) => void): void {
  commandHandlers.push(handler);
}

/** Sends a message to the parent (fire and forget). */
export function tell(msg: WorkerMessage): void {
  process.send?.(msg);
}

/**
 * Sends a message to the parent and resolves once Node has written it to the IPC channel, so it reaches the parent
 * even if this process is killed right after (a fire-and-forget `tell` still queued in Node would be lost).
 */
export function tellFlushed(msg: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined) {
      resolve();
      return;
    }
    process.send(msg, undefined, undefined, () => resolve());
  });
}

/** Sends a question (`id` is added) and resolves with the parent's `{ type: "reply", id, ... }`. */
export function ask(msg: WorkerMessage): Promise<WorkerMessage> {
  const id = nextId++;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    process.send?.({ ...msg, id });
  });
}

/** mulberry32: a tiny seeded PRNG in [0, 1) (the same as @coordis/testing's, without loading the harness). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Resolves once every client is connected and ready (ioredis' `ready` event: it answered its handshake), so the
 * workload's first commands do not spend their timeout on connecting (a loaded machine is slow to start). Waits as
 * long as that takes: a worker respawned while its server is down starts working once the server is back.
 */
export async function connected(
  clients: ReadonlyArray<{ status: string; once(event: "ready", listener: () => void): unknown }>,
): Promise<void> {
  await Promise.all(
    clients.map((c) => (c.status === "ready" ? undefined : new Promise<void>((resolve) => c.once("ready", resolve)))),
  );
}
