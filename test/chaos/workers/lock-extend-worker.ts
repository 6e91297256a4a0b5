// Redlock extension checker worker: holds its own Redlock (one name per worker) with `using()` and auto-extension
// for several TTL thirds at a time, watching lease.signal. When the signal aborts with LeaseLostError, it asks the
// parent to look at the masters before anything is released (the parent counts the masters still holding the
// token), then leaves the routine. Every lease's outcome is reported.
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { LeaseLostError, Redlock } from "@coordis/lock";
import { ask, config, connected, prng, stopping, tell } from "./ipc.js";

interface ExtendWorkerConfig {
  urls: string[];
  prefix: string;
  name: string;
  ttlMs: number;
  nodeTimeoutMs: number;
  /** Each lease is held holdMs[0]..holdMs[1] ms. */
  holdMs: [number, number];
  commandTimeoutMs: number;
  seed: number;
}

const STEP_MS = 10;

const cfg = await config<ExtendWorkerConfig>();
const clients: RedisClient[] = cfg.urls.map((url) => connect(url, { commandTimeoutMs: cfg.commandTimeoutMs }));
const lock = new Redlock(clients, cfg.name, { prefix: cfg.prefix, ttlMs: cfg.ttlMs, nodeTimeoutMs: cfg.nodeTimeoutMs });
const random = prng(cfg.seed);

async function run(): Promise<void> {
  while (!stopping()) {
    const holdMs = cfg.holdMs[0] + Math.floor(random() * (cfg.holdMs[1] - cfg.holdMs[0]));
    try {
      const outcome = await lock.using(
        async (lease) => {
          const until = Date.now() + holdMs;
          while (Date.now() < until) {
            if (lease.signal.aborted) {
              const reason = lease.signal.reason;
              const why = reason instanceof LeaseLostError ? reason.reason : String(reason);
              // The parent reads the masters while this lease's token is still wherever it is (not released yet).
              await ask({ type: "lost", name: cfg.name, token: lease.token, fence: lease.fence, reason: why });
              return `lost-${why}`;
            }
            await sleep(STEP_MS);
          }
          return "held";
        },
        { waitMs: 5_000 },
      );
      tell({ type: "lease", outcome });
    } catch (err) {
      tell({ type: "lease", outcome: `error-${String((err as { code?: string }).code ?? (err as Error).name)}` });
      await sleep(5);
    }
  }
}

await connected(clients);
tell({ type: "ready" });
await run();
for (const c of clients) c.disconnect();
process.disconnect?.();
