import { spawn } from "node:child_process";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { withDeadline } from "./deadline.js";
import { type FaultProxy, type ProxyTarget, startProxy } from "./proxy.js";
import { EventRecorder } from "./recorder.js";
import { startRedis } from "./redis-server.js";
import type { RedisServer } from "./server-types.js";
import { waitUntil } from "./wait.js";

/**
 * A Redis outage a bounded-close test closes during, made with a {@link FaultProxy}:
 * - `blackhole`: connections stay open, nothing is forwarded (commands in flight never get a reply);
 * - `blackhole-then-reconnect`: blackholed, connections dropped, and the client reconnected into the partition
 *   (connected, never ready);
 * - `refused-while-reconnecting`: new connections refused, connections dropped: the client is stuck reconnecting.
 */
export type OutageMode = "blackhole" | "blackhole-then-reconnect" | "refused-while-reconnecting";

/** Every {@link OutageMode}, for a test per mode. */
export const OUTAGE_MODES: readonly OutageMode[] = [
  "blackhole",
  "blackhole-then-reconnect",
  "refused-while-reconnecting",
];

/**
 * How soon a worker of {@link closeDuringOutage} must exit once it reported its close, ms: a timer or socket left
 * behind keeps it alive longer (ioredis' own close timer, `disconnectTimeout`, alone is 2 s by default; a client
 * left open, until it is killed). Below those 2 s with room for a loaded machine: a clean exit took up to 1.27 s
 * at a load average of 22 on 2 cores.
 */
export const EXIT_WITHIN_MS = 1_600;

/** Options of {@link startOutage}. */
export interface StartOutageOptions {
  /**
   * Whether the client noticed that its connections were dropped (modes other than `blackhole`); awaited, so the
   * outage is established before the caller goes on.
   */
  lost?: () => boolean | PromiseLike<boolean>;
  /** How long each wait (lost, reconnected) may take, ms; default 10,000. */
  timeoutMs?: number;
}

/**
 * Starts `mode` on `proxy` and resolves once it is in place: for `blackhole-then-reconnect` once the client opened
 * a new connection through the blackholed proxy.
 * @throws WaitTimeoutError when the client did not notice or reconnect in time
 */
export async function startOutage(
  proxy: FaultProxy,
  mode: OutageMode,
  options: StartOutageOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const accepted = proxy.stats().accepted;
  if (mode === "refused-while-reconnecting") proxy.refuse();
  else proxy.blackhole();
  if (mode === "blackhole") return;
  proxy.dropConnections();
  if (options.lost) await waitUntil("the client to lose its connection", options.lost, timeoutMs);
  if (mode === "blackhole-then-reconnect") {
    await waitUntil("the client to reconnect into the partition", () => proxy.stats().accepted > accepted, timeoutMs);
  }
}

// The worker protocol: the worker prints READY, then LOST when its client lost its connection; the test writes a
// line on the worker's stdin to ask for the close; the worker prints one JSON line with its result.
const READY = "ready";
const LOST = "lost";
const EXITED = "\0exited";

/** Options of {@link closeDuringOutage}. */
export interface CloseDuringOutageOptions {
  /** The Redis server (or node) the fault proxy forwards to; default a `redis-server` of its own, for this run. */
  target?: ProxyTarget | string;
  /**
   * The worker: a TypeScript file run by node with tsx under the `@coordis/source` condition, given the proxy's URL
   * and then {@link args}. It connects through the URL, calls {@link awaitCloseRequest} once set up, {@link reportLost}
   * when its client lost the connection (modes other than `blackhole`), then closes and calls {@link reportClosed}.
   * Its own clients must be closed by then: afterwards nothing may keep it alive.
   */
  workerFile: string;
  /** Arguments after the proxy URL. */
  args?: readonly string[];
  /** The outage to close during. */
  mode: OutageMode;
  /** How long the worker may take to be ready, ms; default 30,000. */
  readyTimeoutMs?: number;
  /** How long the worker may take to report its close once asked, ms; default 15,000. */
  resultTimeoutMs?: number;
}

/** What {@link closeDuringOutage} observed. */
export interface CloseDuringOutageResult<R> {
  /** The worker's {@link reportClosed} value (its close durations and whatever else it measured). */
  readonly result: R;
  /** The worker's exit code, or `"alive"` when it was still running 10 s after its report (then it is killed). */
  readonly exit: number | null | "alive";
  /** From the report until the worker exited, ms: compare with {@link EXIT_WITHIN_MS}. */
  readonly exitAfterMs: number;
}

/**
 * A bounded-close test's run: starts a fault proxy to `target` (or to a server of its own) and the worker process through it, waits until the
 * worker is ready, starts the outage `mode` ({@link startOutage}), asks the worker to close, and measures how soon
 * the worker exits by itself afterwards. The proxy is closed and a worker still running is killed before it
 * resolves.
 * @throws WaitTimeoutError when the worker was not ready, did not notice the outage, or did not report in time
 */
export async function closeDuringOutage<R>(options: CloseDuringOutageOptions): Promise<CloseDuringOutageResult<R>> {
  const own = options.target === undefined ? await startRedis() : undefined;
  try {
    return await closeThrough<R>(options.target ?? (own as RedisServer), options);
  } finally {
    await own?.stop();
  }
}

async function closeThrough<R>(
  target: ProxyTarget | string,
  options: CloseDuringOutageOptions,
): Promise<CloseDuringOutageResult<R>> {
  const proxy = await startProxy({ target });
  const child = spawn(
    process.execPath,
    ["--conditions=@coordis/source", "--import", "tsx", options.workerFile, proxy.url, ...(options.args ?? [])],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  try {
    const lines = new EventRecorder<string>();
    const exited = once(child, "exit").then(([code]) => {
      lines.record(EXITED);
      return code as number | null;
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", lines.record);
    /** The first line matching `predicate`; fails at once when the worker exited before printing it. */
    const line = async (what: string, predicate: (line: string) => boolean, timeoutMs: number) => {
      const got = await lines.waitFor((l) => l === EXITED || predicate(l), { what, timeoutMs });
      if (got === EXITED) throw new Error(`the worker exited with code ${child.exitCode} while waiting for ${what}`);
      return got;
    };
    await line("the worker to be ready", (l) => l === READY, options.readyTimeoutMs ?? 30_000);
    await startOutage(proxy, options.mode, { lost: () => lines.items.includes(LOST) });
    child.stdin?.write("close\n");
    const report = await line("the close result", (l) => l.startsWith("{"), options.resultTimeoutMs ?? 15_000);
    const reportedAt = performance.now();
    const exit = await withDeadline(exited, 10_000, "the worker's exit").catch(() => "alive" as const);
    return { result: JSON.parse(report) as R, exit, exitAfterMs: performance.now() - reportedAt };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await proxy.close();
  }
}

/**
 * For the worker of {@link closeDuringOutage}: says it is ready, and resolves when the test asks for the close (the
 * outage is in place by then). Stdin is closed afterwards, so it keeps nothing alive. (The worker calls
 * `exitWithParent()` first thing, so it never outlives a test run that died during its set-up.)
 */
export async function awaitCloseRequest(): Promise<void> {
  process.stdout.write(`${READY}\n`);
  const input = createInterface({ input: process.stdin });
  await once(input, "line");
  input.close();
  process.stdin.destroy();
}

/** For the worker of {@link closeDuringOutage}: its client lost the connection. */
export function reportLost(): void {
  process.stdout.write(`${LOST}\n`);
}

/** For the worker of {@link closeDuringOutage}: the close is done; `result` is sent to the test as JSON. */
export function reportClosed(result: object): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
