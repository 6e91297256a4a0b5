import type { ServerResponse } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";

const HEARTBEAT_MS = 15_000;

/**
 * Server-sent event streams of one replica: each client gets `event:` / `data:` frames; a comment every 15 s keeps
 * proxies from closing idle streams. `closeAll()` ends every stream (Fastify's close waits for no hijacked socket).
 */
export class SseHub {
  readonly #clients = new Set<ServerResponse>();
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#timer = setInterval(() => this.#write(": ping\n\n"), HEARTBEAT_MS);
    this.#timer.unref();
  }

  /** Number of connected clients. */
  get size(): number {
    return this.#clients.size;
  }

  /** Takes over the response and registers it; `initial` frames go to this client only. */
  open(
    request: FastifyRequest,
    reply: FastifyReply,
    headers: Record<string, string>,
    initial: Array<{ event: string; data: unknown }> = [],
  ): void {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...headers,
    });
    res.write("retry: 2000\n\n");
    for (const frame of initial) res.write(frame_(frame.event, frame.data));
    this.#clients.add(res);
    const drop = () => this.#clients.delete(res);
    request.raw.on("close", drop);
    res.on("close", drop);
  }

  /** Sends one event to every client. */
  send(event: string, data: unknown): void {
    if (this.#clients.size > 0) this.#write(frame_(event, data));
  }

  /** Ends every stream and stops the heartbeat. */
  closeAll(): void {
    clearInterval(this.#timer);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
  }

  #write(text: string): void {
    for (const res of this.#clients) {
      if (!res.writableEnded) res.write(text);
    }
  }
}

function frame_(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
