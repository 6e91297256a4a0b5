// Event-log checker consumer: consumes the group and, for every entry, tells the parent (and waits for its receipt)
// before the handler returns, so an entry acknowledged in Redis has always been recorded as processed. The parent
// SIGKILLs these processes at random; entries they held are reclaimed by the others.
import { connect } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { ask, config, connected, stopped, tell } from "./ipc.js";

interface ConsumerConfig {
  url: string;
  prefix: string;
  name: string;
  consumer: string;
  claimIdleMs: number;
}

const cfg = await config<ConsumerConfig>();
const redis = connect(cfg.url, { commandTimeoutMs: 1_000 });
const log = new EventLog<{ n: number }>(redis, cfg.name, { prefix: cfg.prefix, chain: true });
await connected([redis]);
const consumer = log.group("chaos", { consumer: cfg.consumer }).consume(
  async (entry, { deliveries }) => {
    await ask({ type: "processed", entryId: entry.id, n: entry.data.n, deliveries });
  },
  { concurrency: 8, batch: 50, claimIdleMs: 1_000, maxDeliveries: 1_000, blockMs: 200 },
);
tell({ type: "ready" });
await stopped();
await consumer.stop();
tell({ type: "stopped", stats: consumer.stats() });
redis.disconnect();
process.disconnect?.();
