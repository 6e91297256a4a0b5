import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { EventRecorder } from "@coordis/testing";

const SERVER = fileURLToPath(new URL("../../services/demo/src/server.ts", import.meta.url));

/** Demo replicas running as child processes. */
export interface Replicas {
  readonly urls: string[];
  readonly ids: string[];
  /** Output of every replica so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `count` demo replicas (real `node` processes running the service's sources) on free ports, with ids
 * r1..rN and `env` on top of the defaults; resolves once each printed its "listening" line. They exit with this
 * process (stdin closes) even if `stop()` is never called.
 */
export async function startReplicas(count: number, env: Record<string, string>): Promise<Replicas> {
  const children: ChildProcess[] = [];
  const log: string[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = once(child, "exit");
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await gone;
        clearTimeout(timer);
      }),
    );
  };
  const ids = Array.from({ length: count }, (_, i) => `r${i + 1}`);
  const started = ids.map(
    (id) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ["--conditions=@coordis/source", "--import", "tsx", SERVER], {
          env: {
            ...process.env,
            PORT: "0",
            HOST: "127.0.0.1",
            REPLICA_ID: id,
            LOG_LEVEL: "error",
            COORDIS_EXIT_WITH_PARENT: "1",
            ...env,
          },
          stdio: ["pipe", "pipe", "pipe"],
        });
        children.push(child);
        const timer = setTimeout(
          () => reject(new Error(`replica ${id} did not start in 60 s:\n${log.join("\n")}`)),
          60_000,
        );
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
          if (line.startsWith('{"event":"listening"')) {
            clearTimeout(timer);
            resolve((JSON.parse(line) as { url: string }).url);
          } else log.push(`[${id}] ${line}`);
        });
        createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) =>
          log.push(`[${id}] ${line}`),
        );
        child.once("exit", (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`replica ${id} exited (${signal ?? code}):\n${log.join("\n")}`));
        });
      }),
  );
  try {
    const urls = await Promise.all(started);
    return { urls, ids, output: () => log.join("\n"), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * How the demo tests poll a replica's view: every 100 ms for up to 15 s, a failing request meaning "not yet" (a
 * replica restarting, Redis down).
 */
export const DEMO_WAIT = { timeoutMs: 15_000, intervalMs: 100, ignoreErrors: true } as const;

/** A server-sent event stream read with fetch: frames arrive in `events`; `next(pred)` waits for a matching one. */
export interface SseClient {
  /** The frames so far; `id` is the frame's `id:` line, when it has one. */
  readonly events: Array<{ event: string; data: unknown; id?: string }>;
  next(
    predicate: (e: { event: string; data: unknown; id?: string }) => boolean,
    timeoutMs?: number,
  ): Promise<{ event: string; data: unknown; id?: string }>;
  close(): void;
}

/** Opens an SSE stream at `url` and resolves once the response headers arrived. */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(url, { signal: abort.signal, headers: { accept: "text/event-stream", ...headers } });
  if (!res.ok || res.body === null) throw new Error(`SSE ${url}: HTTP ${res.status}`);
  const frames = new EventRecorder<{ event: string; data: unknown; id?: string }>();
  (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end !== -1) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          const id = /^id: (.*)$/m.exec(frame)?.[1];
          if (event !== undefined && data !== undefined) {
            frames.record({ event, data: JSON.parse(data), ...(id === undefined ? {} : { id }) });
          }
          end = buffer.indexOf("\n\n");
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    events: frames.items,
    next: (predicate, timeoutMs = 15_000) =>
      frames.waitFor(predicate, { what: `a matching SSE event from ${url}`, timeoutMs }).catch((err: Error) => {
        throw new Error(`${err.message}; got ${JSON.stringify(frames.items)}`, { cause: err });
      }),
    close: () => abort.abort(),
  };
}
