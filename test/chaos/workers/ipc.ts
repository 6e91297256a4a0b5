// Worker side of the chaos IPC: ask the parent a question and await its reply; react to "stop".
import type { WorkerMessage } from "../lib/workers.js";

let nextId = 1;
const waiting = new Map<number, (reply: WorkerMessage) => void>();
let stopRequested = false;
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
  if (msg.type === "stop") stopRequested = true;
  for (const h of commandHandlers) h(msg);
});
// The parent went away (or closed the channel): nothing left to report to.
process.on("disconnect", () => process.exit(0));

/** Whether the parent asked this worker to stop. */
export function stopping(): boolean {
  return stopRequested;
}

/** Registers a handler for the parent's messages other than replies. */
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

/** Pings every client until each has answered once (a loaded machine can miss a short command timeout at start). */
export async function connected(clients: ReadonlyArray<{ ping(): Promise<unknown> }>): Promise<void> {
  for (const c of clients) {
    for (let attempt = 0; ; attempt++) {
      try {
        await c.ping();
        break;
      } catch (err) {
        if (attempt >= 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
