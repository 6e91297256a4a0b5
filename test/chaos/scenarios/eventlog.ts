import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import {
  describeSchedule,
  type FaultProxy,
  faultSchedule,
  type RedisServer,
  runSchedule,
  startProxy,
  startRedis,
  testPrefix,
  tryWaitUntil,
} from "@coordis/testing";
import {
  type ChaosWorker,
  reply,
  spawnWorker,
  stopWorkers,
  Violations,
  type WorkerMessage,
  waitReady,
} from "../lib/workers.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";

const CONSUMERS = 3;
const PRODUCERS = 16;
/** After the last append, every acknowledged event must be processed within this time, ms. */
const DRAIN_MS = 60_000;
/** Processes of the calm phase, each with a live consumer (a group of its own) and a shared-group consumer. */
const CALM_CONSUMERS = 3;
/** Entries per burst of the calm phase. */
const BURST = 20;
/** After a burst, every live consumer must have handled all of it within this time, ms (a stalled one never does). */
const LIVENESS_MS = 10_000;
/** claimIdleMs of the calm phase's shared group; its handlers run 50–70% of it. */
const SHARED_CLAIM_IDLE_MS = 1_000;
/** Every entry whose number is a multiple of this fails its first delivery in the shared group. */
const FAIL_EVERY = 3;
/** Interval of the calm phase's steady stream, ms. */
const STREAM_INTERVAL_MS = 120;

/**
 * Event-log checker: 16 concurrent producers append `events` numbered events through a proxy (latency, dropped
 * connections, partitions) with an idempotency key each, retrying every failed append with the same key until it is
 * acknowledged; 3 consumer processes in one group are SIGKILLed at random and respawned; Redis (AOF,
 * `appendfsync always`) is killed and restarted. Checked at the end: every acknowledged append was processed at
 * least once, the log holds each event exactly once under the id its producer was given, nothing was
 * dead-lettered, and the hash chain verifies.
 *
 * Then a calm phase ({@link calmPhase}) checks what faults would hide: liveness (every consumer keeps handling new
 * entries after idle periods, through network latency) and no duplicate handling while every consumer is alive and
 * every handler shorter than claimIdleMs.
 */
export function eventlogScenario(events: number): ChaosScenario {
  return {
    name: "eventlog",
    description: `${events} idempotent appends with retries; consumers SIGKILLed, Redis (AOF always) killed/restarted`,
    defaultDurationMs: 60_000,
    async run({ seed, durationMs, log }): Promise<ScenarioResult> {
      const started = performance.now();
      const schedule = faultSchedule({
        seed,
        generate: {
          durationMs,
          faults: ["pause", "kill", "restart", "latency", "drop", "blackhole"],
          meanIntervalMs: Math.min(2_000, Math.max(300, Math.round(durationMs / 12))),
          targets: { servers: 1, proxies: 1, processes: CONSUMERS },
          faultMs: [200, 1_200],
          latencyMs: [5, 60],
        },
      });
      log(describeSchedule(schedule));
      const violations = new Violations();
      const prefix = testPrefix();
      const name = `chaos-log-${seed}`;
      let server: RedisServer | undefined;
      let proxy: FaultProxy | undefined;
      let producerClient: RedisClient | undefined;
      let checkClient: RedisClient | undefined;
      const workers: ChaosWorker[] = [];
      const acked = new Map<number, string>();
      const processed = new Map<string, number>(); // id → times processed
      const processedN = new Map<string, number>(); // id → event number the consumer saw
      const counts = { appendCalls: 0, retries: 0, duplicates: 0, redeliveries: 0, consumerRespawns: 0 };
      try {
        server = await startRedis({ appendOnly: true, config: { appendfsync: "always" }, leastPrivilege: true });
        proxy = await startProxy({ target: server, seed });
        producerClient = connect(proxy.url, { commandTimeoutMs: 1_000 });
        const eventLog = new EventLog<{ n: number }>(producerClient, name, { prefix, chain: true });
        let ready = 0;
        const onMessage = (msg: WorkerMessage, worker: ChaosWorker) => {
          if (msg.type === "ready") ready++;
          else if (msg.type === "processed") {
            const id = msg.entryId as string;
            const times = (processed.get(id) ?? 0) + 1;
            processed.set(id, times);
            if (times > 1) counts.redeliveries++;
            processedN.set(id, msg.n as number);
            reply(worker, msg, {});
          }
        };
        const spawn = (slot: number, incarnation: number) =>
          spawnWorker(
            "eventlog-consumer.ts",
            slot,
            [
              JSON.stringify({
                url: (server as RedisServer).url,
                prefix,
                name,
                consumer: `c${slot}-${incarnation}`,
              }),
            ],
            onMessage,
          );
        // The group must exist before the first append so it sees every event ("start" also covers a late one).
        for (let i = 0; i < CONSUMERS; i++) workers.push(spawn(i, 0));
        await waitReady(workers, () => ready);

        let next = 0;
        const produce = async () => {
          for (;;) {
            const n = next++;
            if (n >= events) return;
            for (let attempt = 0; ; attempt++) {
              counts.appendCalls++;
              if (attempt > 0) counts.retries++;
              try {
                const { id, duplicate } = await eventLog.append({ n }, { idempotencyKey: `event-${n}` });
                if (duplicate) counts.duplicates++;
                acked.set(n, id);
                break;
              } catch (err) {
                if (!(err instanceof RedisUnavailableError)) {
                  violations.add("append-error", `event ${n}: ${(err as Error).name}: ${(err as Error).message}`);
                  break;
                }
                await sleep(Math.min(200, 10 * 2 ** Math.min(attempt, 5)));
              }
            }
          }
        };
        const processes = workers.map((w) => w.child);
        const faults = runSchedule(
          schedule,
          { servers: [server], proxies: [proxy], processes },
          {
            onInject({ step }) {
              if (step.target !== "process" || step.fault !== "kill") return;
              counts.consumerRespawns++;
              const w = spawn(step.index, counts.consumerRespawns);
              workers.push(w);
              processes[step.index] = w.child;
            },
          },
        );
        await Promise.all(Array.from({ length: PRODUCERS }, produce));
        log(`appended ${acked.size} events (${counts.retries} retries, ${counts.duplicates} deduplicated)`);
        const faultLog = await faults;
        const drained = await tryWaitUntil(() => [...acked.values()].every((id) => processed.has(id)), DRAIN_MS);
        await stopWorkers(workers);

        // The log itself, read directly from the server.
        checkClient = connect(server.url, { commandTimeoutMs: 10_000 });
        const reader = new EventLog<{ n: number }>(checkClient, name, { prefix, chain: true });
        const inLog = new Map<number, string>();
        let entries = 0;
        for (let after: string | undefined; ; ) {
          const page = await reader.read({ limit: 1_000, ...(after === undefined ? {} : { after }) });
          for (const e of page.entries) {
            entries++;
            const first = inLog.get(e.data.n);
            if (first !== undefined)
              violations.add("duplicate-append", `event ${e.data.n} is in the log twice: ${first} and ${e.id}`);
            else inLog.set(e.data.n, e.id);
          }
          if (page.next === undefined || page.entries.length === 0) break;
          after = page.next;
        }
        let missing = 0;
        for (const [n, id] of acked) {
          if (inLog.get(n) !== id) {
            violations.add(
              "lost-append",
              `acknowledged event ${n} (id ${id}) is ${inLog.has(n) ? `in the log as ${inLog.get(n)}` : "not in the log"}`,
            );
          }
          if (!processed.has(id)) {
            missing++;
            violations.add("not-processed", `acknowledged event ${n} (id ${id}) was never processed`);
          }
        }
        for (const [id, n] of processedN) {
          if (inLog.get(n) !== id) violations.add("phantom", `processed ${id} (event ${n}) is not that event's entry`);
        }
        const deadLetters = (await reader.deadLetters({ limit: 1_000 })).length;
        if (deadLetters > 0) violations.add("dead-lettered", `${deadLetters} entries were dead-lettered`);
        const verify = await reader.verify();
        if (!verify.ok) violations.add("chain", `verify(): ${JSON.stringify(verify)}`);
        if (!drained && missing === 0) violations.add("drain", "consumers did not finish in time");
        const calm = await calmPhase({ server, prefix, name: `${name}-calm`, seed, durationMs, violations, log });
        return {
          scenario: "eventlog",
          operations:
            counts.appendCalls +
            [...processed.values()].reduce((a, b) => a + b, 0) +
            calm.calmEntries +
            calm.calmStarts,
          faultsInjected: faultLog.injected,
          violations: violations.count,
          seed,
          elapsedMs: Math.round(performance.now() - started),
          details: {
            events,
            acknowledged: acked.size,
            logEntries: entries,
            processedIds: processed.size,
            ...counts,
            deadLetters,
            chainChecked: verify.checked,
            violationsByKind: violations.byKind,
            faultsByKind: faultLog.byKind,
            faultErrors: faultLog.entries.filter((e) => e.error !== undefined).map((e) => e.error),
            persistence: "appendonly, appendfsync always",
            durationMs,
            ...calm,
          },
          samples: violations.samples,
        };
      } finally {
        await stopWorkers(workers, 0);
        producerClient?.disconnect();
        checkClient?.disconnect();
        await proxy?.close();
        await server?.stop();
      }
    },
  };
}

/**
 * The calm phase: no faults, every consumer alive, 5 ms (± 2) of latency on every connection. `CALM_CONSUMERS`
 * processes (workers/eventlog-live.ts) each run a live consumer in a group of its own (claimIdleMs 20, blockMs 10)
 * and a consumer of one shared group (claimIdleMs 1 s, handlers of 500–700 ms, every 3rd entry failing its first
 * delivery). Bursts of `BURST` entries follow idle periods much longer than claimIdleMs and blockMs, then a steady
 * stream of entries every `STREAM_INTERVAL_MS` keeps the shared group busy while it redelivers the failed ones.
 * Checked: after each burst, every live consumer handles all of it within `LIVENESS_MS` (violation
 * `consumer-stalled`); every entry is handled by the shared group (`not-processed`), and none more often than its
 * failed deliveries + 1 (`duplicate-handling`).
 */
async function calmPhase(context: {
  server: RedisServer;
  prefix: string;
  name: string;
  seed: number;
  durationMs: number;
  violations: Violations;
  log: (line: string) => void;
}): Promise<{
  calmBursts: number;
  calmIdleMs: number;
  calmEntries: number;
  calmStarts: number;
  calmFailures: number;
  calmDuplicates: number;
}> {
  const { server, prefix, name, seed, durationMs, violations } = context;
  const bursts = Math.min(20, Math.max(3, Math.round(durationMs / 2_000)));
  const idleMs = Math.min(2_000, Math.max(400, Math.round(durationMs / 10)));
  const streamEntries = Math.min(500, Math.max(40, Math.round(durationMs / 120)));
  const liveSeen = Array.from({ length: CALM_CONSUMERS }, () => new Set<number>());
  const starts = new Map<string, number[]>(); // entry id -> slots whose handler started it
  const failures = new Map<string, number>();
  const done = new Set<string>();
  const workers: ChaosWorker[] = [];
  let proxy: FaultProxy | undefined;
  let client: RedisClient | undefined;
  let ready = 0;
  let entries = 0;
  try {
    proxy = await startProxy({ target: server, seed: seed + 1 });
    proxy.setLatency(5, 2);
    const onMessage = (msg: WorkerMessage) => {
      if (msg.type === "ready") ready++;
      else if (msg.type === "live") liveSeen[msg.slot as number]?.add(msg.n as number);
      else if (msg.type === "shared") {
        const id = msg.entryId as string;
        starts.set(id, [...(starts.get(id) ?? []), msg.slot as number]);
      } else if (msg.type === "shared-failed") {
        const id = msg.entryId as string;
        failures.set(id, (failures.get(id) ?? 0) + 1);
      } else if (msg.type === "shared-done") done.add(msg.entryId as string);
    };
    const config = { url: proxy.url, prefix, name, sharedClaimIdleMs: SHARED_CLAIM_IDLE_MS, failEvery: FAIL_EVERY };
    for (let slot = 0; slot < CALM_CONSUMERS; slot++) {
      workers.push(spawnWorker("eventlog-live.ts", slot, [JSON.stringify({ ...config, slot })], onMessage));
    }
    await waitReady(workers, () => ready);
    client = connect(proxy.url, { commandTimeoutMs: 5_000 });
    const producer = new EventLog<{ n: number }>(client, name, { prefix, batch: true });
    for (let burst = 0; burst < bursts; burst++) {
      // The idle period is the workload: the consumers' reads come back empty and their claims bring nothing.
      await sleep(idleMs);
      const first = entries;
      entries += BURST;
      await Promise.all(Array.from({ length: BURST }, (_, i) => producer.append({ n: first + i })));
      const handledBurst = (slot: number) => {
        let count = 0;
        for (let n = first; n < entries; n++) if (liveSeen[slot]?.has(n)) count++;
        return count;
      };
      const live = await tryWaitUntil(() => liveSeen.every((_, slot) => handledBurst(slot) === BURST), LIVENESS_MS);
      if (!live) {
        for (let slot = 0; slot < CALM_CONSUMERS; slot++) {
          if (handledBurst(slot) === BURST) continue;
          violations.add(
            "consumer-stalled",
            `live consumer ${slot} handled ${handledBurst(slot)} of the ${BURST} entries of burst ${burst} within ` +
              `${LIVENESS_MS} ms, after an idle period of ${idleMs} ms`,
          );
        }
      }
    }
    // A steady stream, a little less than the shared group handles (3 × 2 slots of 600 ms handlers: 10 per second),
    // so consumers have free slots and blocked reads: reads bring new entries while claims bring the failed ones
    // back, and an entry that waited in its consumer after delivery would age past claimIdleMs in its handler.
    for (let i = 0; i < streamEntries; i++) {
      await producer.append({ n: entries++ });
      await sleep(STREAM_INTERVAL_MS);
    }
    if (!(await tryWaitUntil(() => done.size >= entries, DRAIN_MS))) {
      violations.add("not-processed", `the shared group handled ${done.size} of ${entries} entries`);
    }
  } finally {
    await stopWorkers(workers);
    client?.disconnect();
    await proxy?.close();
  }
  let duplicates = 0;
  for (const [id, by] of starts) {
    if (by.length <= (failures.get(id) ?? 0) + 1) continue;
    duplicates++;
    violations.add(
      "duplicate-handling",
      `entry ${id} was started ${by.length} times (consumers ${by.join(", ")}) with ${failures.get(id) ?? 0} ` +
        `failure(s), every consumer alive and every handler shorter than claimIdleMs`,
    );
  }
  context.log(
    `calm phase: ${bursts} bursts of ${BURST} after ${idleMs} ms idle and ${streamEntries} streamed, ` +
      `${starts.size} entries started, ` +
      `${duplicates} handled twice`,
  );
  return {
    calmBursts: bursts,
    calmIdleMs: idleMs,
    calmEntries: entries,
    calmStarts: [...starts.values()].reduce((sum, by) => sum + by.length, 0),
    calmFailures: [...failures.values()].reduce((a, b) => a + b, 0),
    calmDuplicates: duplicates,
  };
}
