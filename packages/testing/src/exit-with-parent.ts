/**
 * For worker processes that tests spawn: exit as soon as the process that started this one is gone, so an orphaned
 * worker never keeps running (and reconnecting to a server that no longer exists) after its test run ended or
 * crashed. With an IPC channel the channel's `disconnect` says so at once; otherwise the parent pid is polled.
 * Call it once at the top of the worker.
 */
export function exitWithParent(pollMs = 500): void {
  if (process.connected) {
    process.once("disconnect", () => process.exit(0));
    return;
  }
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, pollMs).unref();
}
