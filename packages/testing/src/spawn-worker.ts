import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A TypeScript child process started by {@link spawnWorker}, with an IPC channel. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Everything the child wrote to stderr so far, for failure messages. */
  stderr(): string;
  /** Sends `{ ...cmd, kind: "cmd" }`; the child answers through IPC messages. */
  command(cmd: Record<string, unknown>): void;
  /** Answers a question the child asked: sends `{ ...msg, kind: "reply" }`. */
  reply(msg: Record<string, unknown>): void;
}

/**
 * Starts the TypeScript file `file` (a path or a `file:` URL, e.g. `new URL("./fixtures/worker.ts", import.meta.url)`)
 * in a Node child process through tsx, resolving workspace packages to their sources (`@coordis/source`), with `args`
 * as its argv and an IPC channel: `onMessage` receives every message it sends. Its stdout goes to this process'
 * stdout; its stderr is collected. The child should call {@link exitWithParent} so it never outlives the test.
 */
export function spawnWorker(
  file: string | URL,
  args: readonly string[],
  onMessage: (msg: unknown, worker: WorkerProcess) => void,
): WorkerProcess {
  const path = typeof file === "string" ? file : fileURLToPath(file);
  const child = spawn(process.execPath, ["--conditions=@coordis/source", "--import", "tsx", path, ...args], {
    stdio: ["ignore", "inherit", "pipe", "ipc"],
  });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const worker: WorkerProcess = {
    child,
    pid: child.pid as number,
    exited,
    stderr: () => err,
    command: (cmd) => child.send({ ...cmd, kind: "cmd" }),
    reply: (msg) => child.send({ ...msg, kind: "reply" }),
  };
  child.on("message", (msg) => onMessage(msg, worker));
  return worker;
}
