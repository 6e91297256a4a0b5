import type { Redis } from "ioredis";
import { isCluster, type RedisClient } from "./client.js";

/** The part of a Node socket (net.Socket or tls.TLSSocket) write coalescing uses. */
interface CorkableStream {
  cork(): void;
  uncork(): void;
  readonly writable: boolean;
  readonly destroyed: boolean;
}

/** Streams corked in the current tick (each is uncorked once, from `process.nextTick`). */
const corkedStreams = new WeakSet<CorkableStream>();
/** Cluster clients whose node streams are corked in the current tick. */
const corkedClusters = new WeakSet<object>();

function uncorkStream(stream: CorkableStream): void {
  corkedStreams.delete(stream);
  stream.uncork();
}

function corkNode(client: Redis): void {
  if (client.status !== "ready") return;
  const stream = (client as unknown as { stream?: CorkableStream }).stream;
  if (stream === undefined || corkedStreams.has(stream) || stream.destroyed || !stream.writable) return;
  corkedStreams.add(stream);
  stream.cork();
  process.nextTick(uncorkStream, stream);
}

function uncorkCluster(cluster: object): void {
  corkedClusters.delete(cluster);
}

/**
 * Write coalescing: holds the socket writes of `redis` until the end of the current tick (Node `socket.cork()`,
 * uncorked from `process.nextTick`), so every command written to that connection in this tick, by any caller,
 * leaves in one `writev` system call instead of one `write` each. Order is untouched (one stream, written in call
 * order), every command is still its own request with its own reply, and nothing waits for a timer: the writes go
 * out as soon as the current synchronous code and its promise continuations have run.
 *
 * Why: on Linux a loopback or network `write` costs several µs of CPU, more than ioredis spends building the
 * command; with many calls in flight (50 callers, each starting its next call when its reply arrives) the
 * per-command system call was most of the client's CPU. Corking cuts it to one per tick and lets Redis read and
 * answer the commands together.
 *
 * Applied by `runScript` and `runScriptDynamic` before they write. A client that is not
 * connected yet (ioredis' offline queue) is left alone. On a Cluster every ready node connection is corked for the
 * tick (a command goes to one of them). Idempotent within a tick.
 */
export function corkUntilTickEnd(redis: RedisClient): void {
  if (!isCluster(redis)) {
    corkNode(redis);
    return;
  }
  if (corkedClusters.has(redis)) return;
  corkedClusters.add(redis);
  for (const node of redis.nodes("all")) corkNode(node);
  process.nextTick(uncorkCluster, redis);
}
