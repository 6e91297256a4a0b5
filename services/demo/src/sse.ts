import type { ServerResponse } from "node:http";
import { addressKey } from "@coordis/fastify";
import type { FastifyReply, FastifyRequest } from "fastify";
import { problem } from "./problem.js";

const HEARTBEAT_MS = 15_000;
/** The response headers of a stream. */
const STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  connection: "keep-alive",
  "x-accel-buffering": "no",
};
/** Room left for HTTP chunk framing, so a client's buffer never exceeds `maxBufferBytes` even with it. */
const FRAMING_BYTES = 32;

/** Bounds of an {@link SseHub}. */
export interface SseLimits {
  /** Streams open at once on this replica, all channels together; one more is refused with 503. */
  maxClients: number;
  /** Streams open at once per client address (`request.ip`), all channels together; one more is refused with 429. */
  maxPerAddress: number;
  /**
   * Bytes a client may have waiting in this process once the kernel stopped taking its data. A client that does not
   * read fills its socket buffers, then this; a frame that would exceed it disconnects the client instead. Frames
   * written together (a stream's initial frames, a burst of messages) are offered to the kernel together and count
   * only for a client that is behind already, so a reader that keeps up is never disconnected.
   */
  maxBufferBytes: number;
}

/** Counters of an {@link SseHub} (exported as `demo_sse_*` metrics). */
export interface SseStats {
  /** Open streams per channel. */
  clients: Record<string, number>;
  /** Bytes waiting in this process for all clients, now. */
  bufferedBytes: number;
  /** The most bytes one client that was behind ever had waiting after a write (at most `maxBufferBytes`). */
  peakClientBufferBytes: number;
  /** Clients disconnected because they did not read fast enough. */
  slowDisconnects: number;
  /** Streams refused: over the per-address cap (429) or the total cap (503). */
  refused: { perAddress: number; total: number };
}

interface Client {
  readonly channel: string;
  readonly address: string;
  /** Bytes the kernel had been offered and not taken when the current batch of writes began (0: keeping up). */
  backlog: number;
  /** The id of the last frame with an id this client was sent: a frame with an id not after it is not sent again. */
  lastId: string | undefined;
  /** Frames sent on the channel while the stream was held (see {@link SseHub.hold}), and their bytes. */
  held: Array<{ text: string; id: string | undefined }> | undefined;
  heldBytes: number;
}

/** A frame of a stream: an SSE event, with an `id:` line when `id` (a stream entry id, "<ms>-<seq>") is given. */
export interface SseFrame {
  event: string;
  data: unknown;
  id?: string;
}

/**
 * Server-sent event streams of one replica, on named channels: each client gets `event:` / `data:` frames; a comment
 * every 15 s keeps proxies from closing idle streams. Bounded: at most `maxClients` streams, `maxPerAddress` per
 * client address, and `maxBufferBytes` waiting per client.
 *
 * Node corks a response's socket on its first write of a tick and hands the tick's frames to the kernel together
 * when the tick ends: until then they are in `res.writableLength` whether the client reads or not. So the hub judges
 * a client by what it still holds when a new batch of writes begins: those bytes were offered to the kernel and not
 * taken, the client is behind. While it is, every frame waits in this process, and a frame that would take it past
 * its bound disconnects it (an EventSource reconnects by itself): a reader that stalls costs at most its bound plus
 * one batch of frames, instead of every frame ever sent. A client with nothing left over gets its frames, however
 * many one tick writes. `closeAll()` ends every stream (Fastify's close waits for no hijacked socket).
 */
export class SseHub {
  readonly #limits: SseLimits;
  readonly #clients = new Map<ServerResponse, Client>();
  readonly #perAddress = new Map<string, number>();
  readonly #perChannel = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #peak = 0;
  #slow = 0;
  #refusedAddress = 0;
  #refusedTotal = 0;
  /** closeAll() ran: a stream whose request was in flight then is refused, or it would hold the close up. */
  #closed = false;

  constructor(limits: SseLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 1) throw new Error(`SseHub: ${name} must be a positive integer`);
    }
    this.#limits = { ...limits };
    this.#timer = setInterval(() => this.#broadcast(undefined, ": ping\n\n"), HEARTBEAT_MS);
    this.#timer.unref();
  }

  /** Number of open streams (of `channel`, or all). */
  size(channel?: string): number {
    return channel === undefined ? this.#clients.size : (this.#perChannel.get(channel) ?? 0);
  }

  /** The hub's counters. */
  stats(): SseStats {
    let buffered = 0;
    for (const res of this.#clients.keys()) buffered += res.writableLength;
    return {
      clients: Object.fromEntries(this.#perChannel),
      bufferedBytes: buffered,
      peakClientBufferBytes: this.#peak,
      slowDisconnects: this.#slow,
      refused: { perAddress: this.#refusedAddress, total: this.#refusedTotal },
    };
  }

  /**
   * Opens a stream on `channel`: takes over the response and registers it; `initial` frames go to this client only.
   * Over a cap it answers 429 (this address has `maxPerAddress` streams) or 503 (the replica has `maxClients`, or
   * `closeAll()` ran) as problem+json with `Retry-After`, and returns false.
   */
  open(
    request: FastifyRequest,
    reply: FastifyReply,
    channel: string,
    headers: Record<string, string>,
    initial: SseFrame[] = [],
  ): boolean {
    if (!this.hold(request, reply, channel)) return false;
    this.release(request, reply, headers, initial);
    return true;
  }

  /**
   * The first half of {@link open}: checks the caps and counts the stream (answering 429 or 503 and returning false
   * as `open` does), without answering yet. Frames sent on `channel` meanwhile are kept for this client (up to
   * `maxBufferBytes`; past that it is dropped, its stream never opens) until {@link release} opens the stream with
   * its initial frames first; a held frame with an id not after the last initial frame's is then skipped. So a
   * route can read what came before (a log from a client's `Last-Event-ID`) and miss nothing sent while it read,
   * nor send an entry twice. A route that cannot release calls {@link abandon}, then answers as usual.
   */
  hold(request: FastifyRequest, reply: FastifyReply, channel: string): boolean {
    if (this.#closed) {
      refuse(reply, 503, "Service Unavailable", "This replica is shutting down; reconnect to reach another one.");
      return false;
    }
    const address = addressKey(request.ip);
    const mine = this.#perAddress.get(address) ?? 0;
    if (mine >= this.#limits.maxPerAddress) {
      this.#refusedAddress++;
      refuse(reply, 429, "Too Many Requests", `At most ${this.#limits.maxPerAddress} open streams per client.`);
      return false;
    }
    if (this.#clients.size >= this.#limits.maxClients) {
      this.#refusedTotal++;
      refuse(reply, 503, "Service Unavailable", "This replica serves as many streams as it can; try again shortly.");
      return false;
    }
    // A HEAD request (Fastify answers it on every GET route) gets the stream's headers and no stream: a response
    // without a body sends its headers only when it ends, so a registered one would never answer at all.
    if (request.method === "HEAD") return true;
    const res = reply.raw;
    this.#clients.set(res, { channel, address, backlog: 0, lastId: undefined, held: [], heldBytes: 0 });
    this.#perAddress.set(address, mine + 1);
    this.#perChannel.set(channel, (this.#perChannel.get(channel) ?? 0) + 1);
    const drop = () => this.#drop(res);
    request.raw.on("close", drop);
    res.on("close", drop);
    return true;
  }

  /**
   * Opens a stream {@link hold} took: `initial` frames, then the frames held meanwhile. With `after` (the id of the
   * last entry the client has, e.g. its `Last-Event-ID`) no frame with an id not after it is sent, initial or held.
   */
  release(
    request: FastifyRequest,
    reply: FastifyReply,
    headers: Record<string, string>,
    initial: SseFrame[],
    after?: string,
  ): void {
    const res = reply.raw;
    const client = this.#clients.get(res);
    if (request.method !== "HEAD" && client === undefined) {
      // Dropped while held: closeAll() ran (503, as a stream opened then), or the client left or fell too far behind.
      if (this.#closed) {
        refuse(reply, 503, "Service Unavailable", "This replica is shutting down; reconnect to reach another one.");
        return;
      }
      reply.hijack();
      res.destroy();
      return;
    }
    reply.hijack();
    if (request.method === "HEAD" || client === undefined) {
      res.writeHead(200, { ...STREAM_HEADERS, ...headers });
      res.end();
      return;
    }
    if (request.raw.destroyed || res.destroyed || res.socket === null || res.socket.destroyed) {
      // The client left before its stream opened (while the route read its initial frames): its close events have
      // fired already, so its slot is freed here, or it would count against its address and the replica for good.
      this.#drop(res);
      return;
    }
    const held = client.held ?? [];
    client.held = undefined;
    client.heldBytes = 0;
    if (after !== undefined) client.lastId = after;
    res.writeHead(200, { ...STREAM_HEADERS, ...headers });
    this.#deliver(res, "retry: 2000\n\n");
    for (const frame of initial) this.#deliver(res, frame_(frame), frame.id);
    for (const frame of held) this.#deliver(res, frame.text, frame.id);
  }

  /** Frees what {@link hold} took for a stream that will not open. */
  abandon(reply: FastifyReply): void {
    this.#drop(reply.raw);
  }

  /** Sends one event to every client of `channel` (with an `id:` line and sent once per client when `id` is given). */
  send(channel: string, event: string, data: unknown, id?: string): void {
    if ((this.#perChannel.get(channel) ?? 0) > 0) this.#broadcast(channel, frame_({ event, data, id }), id);
  }

  /** Ends every stream and stops the heartbeat; streams opened afterwards are refused (503). */
  closeAll(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const [res, client] of [...this.#clients]) {
      this.#drop(res);
      if (client.held === undefined) res.end(); // a held stream's route answers when it releases it
    }
  }

  #broadcast(channel: string | undefined, text: string, id?: string): void {
    for (const [res, client] of [...this.#clients]) {
      if (channel !== undefined && client.channel !== channel) continue;
      if (client.held === undefined) this.#deliver(res, text, id);
      else if (channel !== undefined) this.#hold(res, client, text, id);
    }
  }

  #hold(res: ServerResponse, client: Client, text: string, id: string | undefined): void {
    client.heldBytes += Buffer.byteLength(text, "utf8");
    if (client.heldBytes + FRAMING_BYTES > this.#limits.maxBufferBytes) {
      this.#slow++;
      this.#drop(res);
      return;
    }
    client.held?.push({ text, id });
  }

  #deliver(res: ServerResponse, text: string, id?: string): void {
    const client = this.#clients.get(res);
    if (client === undefined) return;
    if (id !== undefined) {
      if (client.lastId !== undefined && !idAfter(id, client.lastId)) return; // sent already (a catch-up read)
      client.lastId = id;
    }
    if (res.writableEnded || res.destroyed || res.socket === null) {
      this.#drop(res); // gone without a close event reaching the hub: its slot is freed all the same
      return;
    }
    // An uncorked socket: this write starts a batch (Node corks until the tick ends), and whatever is still waiting
    // was offered to the kernel before and not taken.
    if (res.socket.writableCorked === 0) client.backlog = res.writableLength;
    if (client.backlog === 0) {
      res.write(text);
      return;
    }
    if (res.writableLength + Buffer.byteLength(text, "utf8") + FRAMING_BYTES > this.#limits.maxBufferBytes) {
      // The client stopped reading long enough to fill its socket buffers and its share here: let it go.
      this.#slow++;
      this.#drop(res);
      res.destroy();
      return;
    }
    res.write(text);
    if (res.writableLength > this.#peak) this.#peak = res.writableLength;
  }

  #drop(res: ServerResponse): void {
    const client = this.#clients.get(res);
    if (client === undefined) return;
    this.#clients.delete(res);
    decrement(this.#perAddress, client.address);
    decrement(this.#perChannel, client.channel);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

function refuse(reply: FastifyReply, status: number, title: string, detail: string): void {
  problem(reply, status, title, detail, { "retry-after": "5" });
}

function frame_({ event, data, id }: SseFrame): string {
  return `${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A Redis stream entry id: "<ms>-<seq>". */
export const STREAM_ID = /^(0|[1-9]\d{0,15})-(0|[1-9]\d{0,15})$/;

/** Whether stream entry id `a` comes after `b` (ids not of the form "<ms>-<seq>" compare as text). */
export function idAfter(a: string, b: string): boolean {
  const x = STREAM_ID.exec(a);
  const y = STREAM_ID.exec(b);
  if (x === null || y === null) return a > b;
  const [am, as] = [BigInt(x[1] as string), BigInt(x[2] as string)];
  const [bm, bs] = [BigInt(y[1] as string), BigInt(y[2] as string)];
  return am > bm || (am === bm && as > bs);
}
