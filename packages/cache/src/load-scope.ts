import { AsyncLocalStorage } from "node:async_hooks";
import { InvalidArgumentError, onAbort } from "@coordis/core";

/** A loader call in progress: the key it loads for its cache (`owner`), and the loader call it runs inside of. */
interface Frame {
  readonly owner: object;
  readonly key: string;
  readonly parent: Frame | undefined;
  /** False once the loader settled: work it left running (a timer, a promise nobody awaits) may use the key again. */
  active: boolean;
}

/**
 * The loader calls the current async context runs inside of, innermost first. One store for every cache of the
 * process (each `AsyncLocalStorage` costs every async operation something), read only on the miss path.
 */
const loading = new AsyncLocalStorage<Frame>();

/** Calls `loader` for `key` of `owner`, marking its async context as loading that key. */
export async function runLoading<T>(owner: object, key: string, loader: () => Promise<T> | T): Promise<T> {
  const frame: Frame = { owner, key, parent: loading.getStore(), active: true };
  try {
    return await loading.run(frame, loader);
  } finally {
    frame.active = false;
  }
}

/**
 * Runs `f` outside of every loader call: for work no loader waits for (a background refresh), whose own calls are
 * not part of the loads that started it.
 */
export function detached<T>(f: () => T): T {
  return loading.exit(f);
}

/**
 * Refuses a `getOrSet` of `key` made, directly or through other keys' loaders, by the loader of that same key of the
 * same cache: it would join (or wait for the fill lock of) the load that waits for it, and stall.
 * @throws InvalidArgumentError naming the key and the chain of loaders
 */
export function assertNotLoading(owner: object, namespace: string, key: string): void {
  const chain: string[] = [];
  for (let f = loading.getStore(); f !== undefined; f = f.parent) {
    if (!f.active) continue;
    chain.push(f.key);
    if (f.owner !== owner || f.key !== key) continue;
    const between = chain.slice(0, -1).reverse();
    const via =
      between.length === 0
        ? ""
        : `, through the loader${between.length > 1 ? "s" : ""} of ${between.map((b) => `"${b}"`).join(" then ")}`;
    throw new InvalidArgumentError(
      "key",
      `the loader of "${key}" (cache "${namespace}") called getOrSet("${key}") again${via}: that call would wait for ` +
        "the load it is itself part of, which cannot finish. A loader must compute its own key's value without " +
        `getOrSet of that key: read the source directly, or use get("${key}"), which never waits for a load`,
    );
  }
}

/**
 * `promise`, or a rejection with `signal.reason` as soon as `signal` aborts (at once when it already has), after
 * `aborted`. The promise is left to settle alone. Without a signal, `promise` itself.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, aborted?: () => void): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      aborted?.();
      reject(signal.reason);
    };
    if (signal.aborted) {
      abort();
      return;
    }
    const stop = onAbort(signal, abort);
    promise.then(
      (value) => {
        stop();
        resolve(value);
      },
      (error: unknown) => {
        stop();
        reject(error);
      },
    );
  });
}
