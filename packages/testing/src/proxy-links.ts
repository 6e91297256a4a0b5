/**
 * The per-connection mechanics of the fault proxy: each accepted client socket is piped to its own upstream socket,
 * both directions through a delay lane, under the current latency / jitter / blackhole state.
 */
import { type Socket, connect as tcpConnect } from "node:net";
import { performance } from "node:perf_hooks";

type Item = { at: number; bytes: number; run: () => void };

/** One direction of one connection: a FIFO of delayed deliveries driven by a single timer, so order is kept. */
class Lane {
  #queue: Item[] = [];
  #timer: NodeJS.Timeout | undefined;

  /** When the last queued item is due; later items are never due earlier. */
  lastAt = 0;
  /** Bytes queued. */
  bytes = 0;

  get idle(): boolean {
    return this.#queue.length === 0;
  }

  push(at: number, bytes: number, run: () => void): void {
    this.lastAt = Math.max(at, this.lastAt);
    this.#queue.push({ at: this.lastAt, bytes, run });
    this.bytes += bytes;
    if (this.#timer === undefined) this.#arm();
  }

  /** Drops everything queued; returns the bytes dropped and whether anything was. */
  clear(): { items: number; bytes: number } {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const dropped = { items: this.#queue.length, bytes: this.bytes };
    this.#queue = [];
    this.bytes = 0;
    return dropped;
  }

  #arm(): void {
    const head = this.#queue[0];
    if (head === undefined) return;
    this.#timer = setTimeout(this.#pump, Math.max(0, head.at - performance.now()));
  }

  readonly #pump = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    while (this.#queue.length > 0 && (this.#queue[0] as Item).at <= now + 0.5) {
      const item = this.#queue.shift() as Item;
      this.bytes -= item.bytes;
      item.run();
    }
    this.#arm();
  };
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly toUpstream: Lane;
  readonly toClient: Lane;
  /** Lost bytes (or a FIN) to a blackhole: the stream cannot continue, it is reset on heal. */
  tainted: boolean;
  closed: boolean;
}

/** Counters and fault state of the links (the proxy's stats without its listening state). */
export interface LinkStats {
  readonly accepted: number;
  readonly dropped: number;
  readonly bytesToTarget: number;
  readonly bytesToClients: number;
  readonly bytesDiscarded: number;
  readonly connections: number;
  readonly bytesInFlight: number;
  readonly latencyMs: number;
  readonly jitterMs: number;
  readonly blackholed: boolean;
}

/** Resets a socket (RST), falling back to a plain destroy where a reset is not possible. */
export function reset(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/** The open client ↔ upstream connections of one proxy and the faults applied to them. */
export class ProxyLinks {
  readonly #target: { readonly host: string; readonly port: number };
  readonly #random: () => number;
  readonly #pairs = new Set<Pair>();
  readonly #counters = { accepted: 0, dropped: 0, bytesToTarget: 0, bytesToClients: 0, bytesDiscarded: 0 };
  #latencyMs = 0;
  #jitterMs = 0;
  #blackholed = false;

  constructor(target: { readonly host: string; readonly port: number }, random: () => number) {
    this.#target = target;
    this.#random = random;
  }

  /** Sets the latency and jitter of every direction (already validated). */
  setLatency(ms: number, jitterMs: number): void {
    this.#latencyMs = ms;
    this.#jitterMs = jitterMs;
  }

  /** Connects an accepted client to a new upstream socket and starts forwarding both ways. */
  open(client: Socket): void {
    this.#counters.accepted++;
    client.setNoDelay(true);
    const upstream = tcpConnect({ host: this.#target.host, port: this.#target.port });
    upstream.on("error", () => {});
    upstream.setNoDelay(true);
    const pair: Pair = {
      client,
      upstream,
      toUpstream: new Lane(),
      toClient: new Lane(),
      tainted: false,
      closed: false,
    };
    this.#pairs.add(pair);
    this.#pipe(pair, client, upstream, pair.toUpstream, true);
    this.#pipe(pair, upstream, client, pair.toClient, false);
  }

  /** Resets every connection; returns how many. */
  dropAll(): number {
    const victims = [...this.#pairs];
    for (const pair of victims) this.#destroy(pair, true);
    return victims.length;
  }

  /** Starts a partition; data in flight (delayed by latency) is lost in it too. */
  blackhole(): void {
    if (this.#blackholed) return;
    this.#blackholed = true;
    for (const pair of this.#pairs) {
      for (const lane of [pair.toUpstream, pair.toClient]) {
        const lost = lane.clear();
        if (lost.items > 0) {
          pair.tainted = true;
          this.#counters.bytesDiscarded += lost.bytes;
        }
      }
    }
  }

  /** Ends a partition, resetting the connections that lost data; returns how many. */
  heal(): number {
    if (!this.#blackholed) return 0;
    this.#blackholed = false;
    let resetCount = 0;
    for (const pair of [...this.#pairs]) {
      if (pair.tainted) {
        this.#destroy(pair, true);
        resetCount++;
      }
    }
    return resetCount;
  }

  stats(): LinkStats {
    let bytesInFlight = 0;
    for (const pair of this.#pairs) bytesInFlight += pair.toUpstream.bytes + pair.toClient.bytes;
    return {
      ...this.#counters,
      connections: this.#pairs.size,
      bytesInFlight,
      latencyMs: this.#latencyMs,
      jitterMs: this.#jitterMs,
      blackholed: this.#blackholed,
    };
  }

  #destroy(pair: Pair, counted: boolean): void {
    if (pair.closed) return;
    pair.closed = true;
    this.#pairs.delete(pair);
    pair.toUpstream.clear();
    pair.toClient.clear();
    reset(pair.client);
    reset(pair.upstream);
    if (counted) this.#counters.dropped++;
  }

  #delay(): number {
    const jitterMs = this.#jitterMs;
    return Math.max(0, this.#latencyMs + (jitterMs === 0 ? 0 : (this.#random() * 2 - 1) * jitterMs));
  }

  /** Forwards src → dst through `lane`, honouring latency and blackhole. */
  #pipe(pair: Pair, src: Socket, dst: Socket, lane: Lane, toTarget: boolean): void {
    const counters = this.#counters;
    src.on("data", (chunk: Buffer) => {
      if (pair.closed) return;
      if (this.#blackholed) {
        counters.bytesDiscarded += chunk.length;
        pair.tainted = true;
        return;
      }
      const deliver = () => {
        if (pair.closed) return;
        if (toTarget) counters.bytesToTarget += chunk.length;
        else counters.bytesToClients += chunk.length;
        if (!dst.write(chunk) && lane.idle) {
          // Back-pressure on the direct path only; delayed data is small in tests.
          src.pause();
          dst.once("drain", () => src.resume());
        }
      };
      const d = this.#delay();
      if (d === 0 && lane.idle) deliver();
      else lane.push(performance.now() + d, chunk.length, deliver);
    });
    src.on("end", () => {
      if (pair.closed) return;
      if (this.#blackholed) {
        // The FIN is lost like any other packet; the client finds out when the partition heals.
        pair.tainted = true;
        return;
      }
      const finish = () => {
        if (!pair.closed) dst.end();
      };
      if (lane.idle && this.#latencyMs === 0) finish();
      else lane.push(performance.now() + this.#delay(), 0, finish);
    });
    src.on("close", () => {
      if (pair.closed) return;
      if (this.#blackholed && !toTarget) {
        pair.tainted = true; // the target went away behind the partition: the client sees silence until heal
        return;
      }
      const finish = () => {
        if (pair.closed) return;
        pair.closed = true;
        this.#pairs.delete(pair);
        dst.end(() => dst.destroy());
        src.destroy();
      };
      if (lane.idle) finish();
      else lane.push(performance.now(), 0, finish);
    });
  }
}
