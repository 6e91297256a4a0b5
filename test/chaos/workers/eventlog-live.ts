// Event-log checker, calm phase: one process with two consumers, through a latency proxy, never killed.
// - `live-<slot>`: a group of its own (every entry reaches it), with the shortest claimIdleMs and blockMs: reads that
//   come back empty and claims that bring nothing overlap during the idle periods between bursts. It reports every
//   entry ("live"); the parent checks that it keeps handling new entries after each idle period.
// - `shared`: one group for every process, handlers 50–70% of claimIdleMs, some first deliveries failing (so
//   claims bring entries while reads do). It reports every start ("shared") and failure ("shared-failed"); the parent
//   checks that no entry is handled more often than its failures + 1.
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { config, connected, stopped, tell } from "./ipc.js";

interface LiveConfig {
  url: string;
  prefix: string;
  name: string;
  slot: number;
  /** claimIdleMs of the shared group; its handlers run up to 70% of it. */
  sharedClaimIdleMs: number;
  /** Every entry whose number is a multiple of this fails its first delivery in the shared group. */
  failEvery: number;
}

const cfg = await config<LiveConfig>();
const redis = connect(cfg.url, { commandTimeoutMs: 5_000 });
const log = new EventLog<{ n: number }>(redis, cfg.name, { prefix: cfg.prefix });
await connected([redis]);
const liveGroup = log.group(`live-${cfg.slot}`, { consumer: `live-${cfg.slot}`, startAt: "end" });
const sharedGroup = log.group("shared", { consumer: `shared-${cfg.slot}`, startAt: "end" });
await liveGroup.create();
await sharedGroup.create();
const live = liveGroup.consume(
  (entry) => {
    // How long after its append (the entry id's server time; this machine's clock) the handler got it: the parent
    // judges liveness by it, not by when it reads this message (its own checks may keep it busy meanwhile).
    tell({ type: "live", slot: cfg.slot, n: entry.data.n, lagMs: Date.now() - Number(entry.id.split("-")[0]) });
  },
  { claimIdleMs: 20, blockMs: 10 },
);
const shared = sharedGroup.consume(
  async (entry, { deliveries }) => {
    tell({ type: "shared", entryId: entry.id, slot: cfg.slot, deliveries });
    // Simulated work, shorter than claimIdleMs (50–70% of it): long enough that an entry that waited in its
    // consumer after delivery would age past claimIdleMs before its handler ends.
    await sleep(Math.floor((0.5 + Math.random() * 0.2) * cfg.sharedClaimIdleMs));
    if (entry.data.n % cfg.failEvery === 0 && deliveries === 1) {
      tell({ type: "shared-failed", entryId: entry.id });
      throw new Error("first delivery fails");
    }
    tell({ type: "shared-done", entryId: entry.id });
  },
  { concurrency: 2, claimIdleMs: cfg.sharedClaimIdleMs, claimIntervalMs: 100, blockMs: 50 },
);
tell({ type: "ready" });
await stopped();
await Promise.all([live.stop(), shared.stop()]);
tell({ type: "stopped" });
redis.disconnect();
process.disconnect?.();
