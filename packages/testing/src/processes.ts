import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";

/**
 * Bookkeeping that guarantees no redis-server outlives the process that started it:
 * - on a normal exit of this process, every live child is SIGKILLed synchronously (`exit` hook);
 * - for a crash or SIGKILL of this process, each child has a tiny detached watchdog shell that polls this
 *   process' pid and kills the child once this process is gone (and removes the server's own temp dir).
 */
const live = new Map<number, { child: ChildProcess; watchdog: ChildProcess | undefined; dir: string | undefined }>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const [pid, entry] of live) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
      if (entry.watchdog?.pid !== undefined) {
        try {
          process.kill(entry.watchdog.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      // The server's own temp dir goes with it (a server killed here is never stopped, which would remove it).
      if (entry.dir !== undefined) rmSync(entry.dir, { recursive: true, force: true });
    }
  });
}

/**
 * Registers a spawned server so it is killed when this process exits or dies; `dir`, the server's own temp dir, is
 * removed too when this process exits normally with the server still running.
 */
export function track(child: ChildProcess, dir?: string): void {
  if (child.pid === undefined) return;
  hookExit();
  const owner = process.pid;
  const pid = child.pid;
  // Poll twice a second; kill the child only if the owner is gone (not when the child itself exited first).
  // A server's own temp dir goes with it (mkdtemp names hold no quote); the path is passed as an argument, not code.
  const cleanup = dir === undefined ? "" : '; wait_gone; rm -rf -- "$1"';
  const script =
    `wait_gone() { for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 ${pid} 2>/dev/null || return 0; sleep 0.1; done; }; ` +
    `while kill -0 ${owner} 2>/dev/null && kill -0 ${pid} 2>/dev/null; do sleep 0.5; done; ` +
    `kill -0 ${owner} 2>/dev/null || { kill -9 ${pid} 2>/dev/null${cleanup}; }; exit 0`;
  let watchdog: ChildProcess | undefined;
  try {
    watchdog = spawn("/bin/sh", ["-c", script, "watchdog", ...(dir === undefined ? [] : [dir])], {
      detached: true,
      stdio: "ignore",
    });
    watchdog.on("error", () => {});
    watchdog.unref();
  } catch {
    watchdog = undefined;
  }
  live.set(pid, { child, watchdog, dir });
  child.once("exit", () => untrack(pid));
}

function untrack(pid: number): void {
  const entry = live.get(pid);
  if (entry === undefined) return;
  live.delete(pid);
  if (entry.watchdog?.pid !== undefined && entry.watchdog.exitCode === null) {
    try {
      process.kill(entry.watchdog.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Pids of the servers this process started that are still running. */
export function livePids(): number[] {
  return [...live.keys()];
}
