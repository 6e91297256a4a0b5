/** The callbacks waiting on a signal, behind the one listener Coordis adds to it while any wait. */
interface Waits {
  readonly callbacks: Set<() => void>;
  readonly listener: () => void;
}

const waiting = new WeakMap<AbortSignal, Waits>();

/**
 * Calls `callback` once when `signal` aborts (not at all when it has already aborted: check `signal.aborted` first);
 * returns the function that stops waiting. However many calls wait on one signal (a thousand acquires given one
 * application-wide shutdown signal), the signal carries one `abort` listener of Coordis, removed once none waits:
 * Node warns of a possible leak (`MaxListenersExceededWarning`) past 10 listeners on one signal, a warning users
 * would see for every such pattern although each wait removes its own callback when it ends.
 */
export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  // Already aborted (a wait made by a callback of this very abort included): nothing to wait for, and no listener
  // left behind on a signal that will never fire again.
  if (signal.aborted) return () => {};
  let waits = waiting.get(signal);
  if (waits === undefined) {
    const callbacks = new Set<() => void>();
    const listener = () => {
      waiting.delete(signal);
      // Each wait is called as if it had its own listener: one that throws does not keep the others from being
      // called (its error is thrown once every wait ran, and the signal reports it as any listener's), and a wait
      // stopped by an earlier one's callback is not called.
      let failed: { error: unknown } | undefined;
      for (const f of [...callbacks]) {
        if (!callbacks.delete(f)) continue;
        try {
          f();
        } catch (error) {
          if (failed === undefined) failed = { error };
          else
            queueMicrotask(() => {
              throw error;
            });
        }
      }
      if (failed !== undefined) throw failed.error;
    };
    waits = { callbacks, listener };
    waiting.set(signal, waits);
    signal.addEventListener("abort", listener, { once: true });
  }
  const mine = waits;
  // A wrapper per call: the same function registered twice is two waits, each removed by its own stop.
  const entry = () => callback();
  mine.callbacks.add(entry);
  return () => {
    if (!mine.callbacks.delete(entry) || mine.callbacks.size > 0 || waiting.get(signal) !== mine) return;
    waiting.delete(signal);
    signal.removeEventListener("abort", mine.listener);
  };
}
