import { validate } from "@coordis/core";

/** The bound of a worker's shutdown and the text it stores of a failed attempt. */

/** Longest error text stored with a failed attempt. */
export const MAX_ERROR_CHARS = 4_096;

/**
 * What {@link Worker.close} may take on top of its `timeoutMs`, ms: handing running jobs back, recording the last
 * outcomes and closing the worker's connections. Past it, close() resolves whatever Redis does (unreachable, stuck
 * reconnecting): what was not recorded by then is left to the leases (the jobs are delivered again after them).
 */
export const CLOSE_GRACE_MS = 1_000;

/** Resolves when `promise` settles or at `deadline` (`performance.now()` base), whichever comes first. */
export function until(promise: Promise<unknown>, deadline: number): Promise<void> {
  const left = deadline - performance.now();
  if (left <= 0) return Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.then(
      () => {},
      () => {},
    ),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, left);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Options of {@link Worker.close}. */
export interface CloseOptions {
  /**
   * How long running handlers may go on before their jobs are handed back, ms (0 – 24 h). Default 30 s. close()
   * resolves at the latest {@link CLOSE_GRACE_MS} after it, even when Redis cannot be reached.
   */
  timeoutMs?: number;
}

/**
 * What a failed attempt records about what its handler threw: an Error's `"<name>: <message>"`, else the value's
 * string form, at most {@link MAX_ERROR_CHARS} characters. Never throws: a value without a string form (a
 * null-prototype object, an error whose message is a symbol or a getter that throws) is described by its type, so
 * its attempt still fails and its handler slot is freed.
 */
export function errorText(err: unknown): string {
  return validate.thrownText(err, MAX_ERROR_CHARS);
}
