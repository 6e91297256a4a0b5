import { InvalidArgumentError } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { afterEach, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

/** A promise and the function that resolves it. */
function gate<T = void>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

/** Records how a promise settled, without awaiting it. */
function watch<T>(p: Promise<T>): { settled: () => boolean; value: () => T | undefined; error: () => unknown } {
  let settled = false;
  let value: T | undefined;
  let error: unknown;
  p.then(
    (v) => {
      value = v;
      settled = true;
    },
    (e: unknown) => {
      error = e;
      settled = true;
    },
  );
  return { settled: () => settled, value: () => value, error: () => error };
}

describe("getOrSet", () => {
  const shared = sharedClients();
  const caches: Cache[] = [];
  let n = 0;
  /**
   * A cache of a namespace of its own (`ns` to share one between instances, as replicas do), with
   * `detectLoaderCycles` on unless `detect` is false.
   */
  async function make(ns = `re${++n}`, lock: { waitMs?: number; ttlMs?: number } = {}, detect = true): Promise<Cache> {
    const cache = new Cache(shared.redis, { namespace: ns, prefix, ttlMs: 60_000, lock, detectLoaderCycles: detect });
    caches.push(cache);
    await cache.ready();
    return cache;
  }
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });

  describe("called by the loader of its own key", () => {
    it("without detectLoaderCycles (the default) waits on its own load: a signal ends the wait", async () => {
      const cache = await make(undefined, {}, false);
      const stop = new AbortController();
      let inner: unknown;
      const outer = cache.getOrSet("a", async () => {
        try {
          await cache.getOrSet("a", () => "inner", { signal: stop.signal });
        } catch (err) {
          inner = err;
        }
        return "outer";
      });
      // Nothing refuses the inner call: it joined the load it is part of, which waits for it.
      await waitUntil("the loader to be waiting", () => cache.stats().loads === 1, 5_000);
      expect(inner).toBeUndefined();
      stop.abort(new Error("gave up"));
      expect(await outer).toBe("outer");
      expect((inner as Error).message).toBe("gave up");
    });

    it("detectLoaderCycles must be a boolean", () => {
      expect(
        () =>
          new Cache(shared.redis, {
            namespace: "x",
            prefix,
            ttlMs: 1000,
            detectLoaderCycles: "yes" as unknown as boolean,
          }),
      ).toThrow(InvalidArgumentError);
    });

    it("is refused at once with InvalidArgumentError naming the key; other callers still share the load", async () => {
      const cache = await make();
      const other = await make(); // another namespace: the same key there is another entry
      const release = gate();
      let inner: unknown;
      let otherValue: unknown;
      let loads = 0;
      const outer = watch(
        cache.getOrSet("a", async () => {
          loads++;
          otherValue = await other.getOrSet("a", () => "other's a");
          try {
            await cache.getOrSet("a", () => "inner");
          } catch (err) {
            inner = err;
          }
          await release.promise;
          return "outer";
        }),
      );
      // Bounded, not timed: before the fix the inner call joined the load it is part of and never settled.
      await waitUntil("the inner call to be refused", () => inner !== undefined, 5_000);
      expect(outer.settled()).toBe(false);
      expect(inner).toBeInstanceOf(InvalidArgumentError);
      expect((inner as InvalidArgumentError).argument).toBe("key");
      expect((inner as Error).message).toContain('the loader of "a"');
      expect((inner as Error).message).toContain('called getOrSet("a") again');
      expect((inner as Error).message).toContain('get("a")');
      expect(otherValue).toBe("other's a");
      // A caller outside the loader still joins the load in flight.
      let joinedLoader = false;
      const joined = cache.getOrSet("a", () => {
        joinedLoader = true;
        return "joined";
      });
      release.open();
      expect(await joined).toBe("outer");
      await waitUntil("the outer call", () => outer.settled(), 5_000);
      expect(outer.value()).toBe("outer");
      expect(joinedLoader).toBe(false);
      expect(loads).toBe(1);
      expect(await cache.get("a")).toBe("outer");
    });

    it("is refused through a chain of loaders (a → b → a), naming the chain; the loader of b may go on", async () => {
      const cache = await make();
      let inner: unknown;
      const outer = watch(
        cache.getOrSet("a", async () => {
          const b = await cache.getOrSet("b", async () => {
            try {
              await cache.getOrSet("a", () => "inner");
            } catch (err) {
              inner = err;
            }
            return "b";
          });
          return `a(${b})`;
        }),
      );
      await waitUntil("the call of a made by the loader of b to settle", () => inner !== undefined, 5_000);
      expect(inner).toBeInstanceOf(InvalidArgumentError);
      expect((inner as Error).message).toContain('the loader of "a"');
      expect((inner as Error).message).toContain('through the loader of "b"');
      await waitUntil("the outer call", () => outer.settled(), 5_000);
      expect(outer.error()).toBeUndefined();
      expect(outer.value()).toBe("a(b)");
      expect(await cache.get("b")).toBe("b");
    });

    it("work a loader leaves running may use the key once the load is over", async () => {
      const cache = await make();
      const after = gate();
      let later: Promise<unknown> | undefined;
      expect(
        await cache.getOrSet("a", () => {
          // Runs in the loader's async context, but after the load ended.
          later = after.promise.then(() => cache.getOrSet("a", () => "reloaded"));
          return "first";
        }),
      ).toBe("first");
      await cache.delete("a");
      after.open();
      expect(await later).toBe("reloaded");
    });
  });

  describe("with a signal", () => {
    it("already aborted: rejects with its reason before any Redis call or loader call", async () => {
      const cache = await make();
      const calls = cache.stats().redisCalls;
      let loaded = false;
      const loader = () => {
        loaded = true;
        return 1;
      };
      const reason = new Error("gone");
      await expect(cache.getOrSet("a", loader, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      await expect(cache.getOrSet("a", loader, { signal: AbortSignal.abort() })).rejects.toMatchObject({
        name: "AbortError",
      });
      expect(loaded).toBe(false);
      expect(cache.stats().redisCalls).toBe(calls);
    });

    it("refuses a value that is not an AbortSignal with InvalidArgumentError", async () => {
      const cache = await make();
      for (const signal of [null, "abort", { aborted: false }, new AbortController()]) {
        const call = cache.getOrSet("a", () => 1, { signal } as never);
        await expect(call).rejects.toBeInstanceOf(InvalidArgumentError);
        await expect(call).rejects.toThrow(/options\.signal.*expected an AbortSignal/);
      }
    });

    it("aborting rejects that caller at once; the load goes on for the others and fills the cache", async () => {
      const cache = await make();
      const replica = await make(cache.namespace);
      const release = gate<string>();
      let entered = false;
      const controller = new AbortController();
      const aborting = watch(
        cache.getOrSet(
          "k",
          () => {
            entered = true;
            return release.promise;
          },
          { signal: controller.signal },
        ),
      );
      await waitUntil("the loader to start", () => entered, 5_000);
      const staying = cache.getOrSet("k", () => "never");
      const reason = new Error("client went away");
      controller.abort(reason);
      await waitUntil("the aborted call to reject", () => aborting.settled(), 5_000);
      expect(aborting.error()).toBe(reason);
      release.open("loaded");
      expect(await staying).toBe("loaded");
      expect(await replica.get("k")).toBe("loaded");
      expect(cache.stats().loads).toBe(1);
    });

    it("a load whose every caller aborted after its loader started still fills the cache", async () => {
      const cache = await make();
      const replica = await make(cache.namespace);
      const release = gate<string>();
      let entered = false;
      const controller = new AbortController();
      const call = watch(
        cache.getOrSet(
          "k",
          () => {
            entered = true;
            return release.promise;
          },
          { signal: controller.signal },
        ),
      );
      await waitUntil("the loader to start", () => entered, 5_000);
      controller.abort();
      await waitUntil("the aborted call to reject", () => call.settled(), 5_000);
      expect((call.error() as Error).name).toBe("AbortError");
      release.open("loaded");
      await waitUntil("the load to fill the cache", async () => (await replica.get("k")) === "loaded", 5_000);
    });

    it("a load whose callers all aborted before its loader started is dropped; the next call starts anew", async () => {
      const ns = `re${++n}`;
      const holder = await make(ns); // another replica, loading k for a long time
      const cache = await make(ns, { waitMs: 100 });
      const release = gate<string>();
      const entered = gate();
      const held = holder.getOrSet("k", () => {
        entered.open();
        return release.promise;
      });
      await entered.promise;
      let abandonedLoads = 0;
      const controller = new AbortController();
      const aborted = watch(
        cache.getOrSet(
          "k",
          () => {
            abandonedLoads++;
            return "abandoned";
          },
          { signal: controller.signal },
        ),
      );
      controller.abort();
      await waitUntil("the aborted call to reject", () => aborted.settled(), 5_000);
      // The next call does not join the dropped load: it waits lock.waitMs for the holder, then loads itself (and the
      // dropped load, which waited longer, would have loaded before it).
      let abandonedLoadsSeen = -1;
      const next = await cache.getOrSet("k", () => {
        abandonedLoadsSeen = abandonedLoads;
        return "next";
      });
      expect(next).toBe("next");
      expect(abandonedLoadsSeen).toBe(0);
      release.open("held");
      expect(await held).toBe("held");
      expect(abandonedLoads).toBe(0);
      expect((aborted.error() as Error).name).toBe("AbortError");
    });
  });
});
