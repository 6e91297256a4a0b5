import { type Lease, Mutex, Redlock, Semaphore } from "@coordis/lock";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix();

/** The acquire step every lock kind runs per attempt (protected in the source). */
type WithAttempt = { attempt(): Promise<{ kind: string }> };

/** Queues `fn` `depth` microtasks from now. */
function inMicrotasks(depth: number, fn: () => void): void {
  if (depth === 0) fn();
  else queueMicrotask(() => inMicrotasks(depth - 1, fn));
}

// "Aborting signal makes acquire() reject at once with signal.reason; a lease won by an attempt in flight is released,
// never handed out." An abort can land after the winning attempt has answered but before acquire() resolves: in the
// microtasks between. Whatever the moment, a caller whose signal aborted before acquire() settled must not get a
// lease, and nothing may stay held. The order of the abort and of acquire()'s report (made as it settles) tells
// which came first.
describe("an abort landing between the winning attempt's answer and acquire() resolving", () => {
  const clients = sharedClients();

  for (const kind of ["Mutex", "Semaphore", "Redlock"] as const) {
    it(`${kind}: no lease is handed out to an aborted caller, and the lock is free after`, async () => {
      const events: string[] = [];
      const observer = { onOperation: (op: { op: string; outcome: string }) => void events.push(op.outcome) };
      const make = (name: string) =>
        kind === "Mutex"
          ? new Mutex(clients.redis, name, { prefix, observer })
          : kind === "Semaphore"
            ? new Semaphore(clients.redis, name, { prefix, permits: 1, observer })
            : new Redlock([clients.redis], name, { prefix, observer });
      for (let depth = 0; depth <= 8; depth++) {
        const lock = make(`${kind}-window-${depth}`);
        const controller = new AbortController();
        controller.signal.addEventListener("abort", () => events.push("abort"));
        events.length = 0;
        const own = lock as unknown as WithAttempt;
        const attempt = own.attempt.bind(lock);
        own.attempt = async () => {
          const result = await attempt();
          // The attempt won: the abort comes `depth` microtasks after its answer.
          if (result.kind === "acquired") inMicrotasks(depth, () => controller.abort(new Error("stop")));
          return result;
        };
        const outcome = await lock.acquire({ signal: controller.signal, waitMs: 5_000 }).then(
          (lease) => ({ lease }),
          (err: unknown) => ({ err }),
        );
        if ("lease" in outcome) {
          // Handed out: the abort, if any yet, must have come after acquire() settled ("acquired" reported).
          expect(events[0], `depth ${depth}`).toBe("acquired");
          await (outcome.lease as Lease).release();
        } else {
          expect((outcome.err as Error).message, `depth ${depth}`).toBe("stop");
          expect(events.slice(0, 2), `depth ${depth}`).toEqual(["abort", "aborted"]);
        }
        // Whatever happened, the lock is free again (a lease won for an aborted caller was given back).
        const again = await make(`${kind}-window-${depth}`).tryAcquire();
        expect(again, `depth ${depth}: free after`).not.toBeNull();
        await again?.release();
      }
    });
  }
});
