import { performance } from "node:perf_hooks";
import { EventLog } from "@coordis/eventlog";
import {
  describeSchedule,
  type RedisServer,
  runSchedule,
  startRedis,
  testPrefix,
  tryWaitUntil,
} from "@coordis/testing";
import { type DurableRedis, durableRedisSchedule, startDurableRedis } from "../lib/durable-redis.js";
import { produce } from "../lib/producers.js";
import { scenarioResult } from "../lib/result.js";
import { WorkerPool } from "../lib/worker-pool.js";
import { reply, Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";
import { CalmPhase, type CalmSummary } from "./eventlog-calm.js";

const CONSUMERS = 3;
const PRODUCERS = 16;
/** After the last append, every acknowledged event must be processed within this time, ms. */
const DRAIN_MS = 60_000;

/**
 * Event-log checker: 16 concurrent producers append `events` numbered events through a proxy (latency, dropped
 * connections, partitions) with an idempotency key each, spread over the faulty phase, retrying every failed append
 * with the same key until it is acknowledged; 3 consumer processes in one group are SIGKILLed at random and
 * respawned; Redis (AOF, `appendfsync always`) is killed and restarted. Checked at the end: every acknowledged append
 * was processed at least once, the log holds each event exactly once under the id its producer was given, nothing
 * was dead-lettered, and the hash chain verifies.
 *
 * Then a calm phase ({@link CalmPhase}, on a server of its own that no fault reaches, set up meanwhile) checks what
 * faults would hide: liveness (every consumer keeps handling new entries after idle periods, through network
 * latency) and no duplicate handling while every consumer is alive and every handler shorter than claimIdleMs. Its
 * bursts begin once the fault phase's checks are done: its latency proxy runs in this process, which the drain (an
 * IPC message per processed entry) and the checks of 100,000 entries keep busy, so overlapping them held every
 * calm-phase connection for up to 25 s on a loaded machine (reported as stalled consumers).
 */
export function eventlogScenario(events: number): ChaosScenario {
  return {
    name: "eventlog",
    description: `${events} idempotent appends with retries; consumers SIGKILLed, Redis (AOF always) killed/restarted`,
    defaultDurationMs: 60_000,
    async run({ seed, durationMs, log }): Promise<ScenarioResult> {
      const started = performance.now();
      const schedule = durableRedisSchedule(seed, durationMs, CONSUMERS);
      log(describeSchedule(schedule));
      const violations = new Violations();
      const prefix = testPrefix();
      const name = `chaos-log-${seed}`;
      const acked = new Map<number, string>();
      const processed = new Map<string, number>(); // id → times processed
      const processedN = new Map<string, number>(); // id → event number the consumer saw
      let redeliveries = 0;
      let duplicates = 0;
      // Every process loads while the server starts; the calm phase's wait for their configuration.
      const consumers = new WorkerPool({
        file: "eventlog-consumer.ts",
        count: CONSUMERS,
        crashes: violations,
        onMessage(msg, worker) {
          if (msg.type !== "processed") return;
          const id = msg.entryId as string;
          const times = (processed.get(id) ?? 0) + 1;
          processed.set(id, times);
          if (times > 1) redeliveries++;
          processedN.set(id, msg.n as number);
          reply(worker, msg, {});
        },
      });
      const calm = new CalmPhase(violations);
      let redis: DurableRedis | undefined;
      let calmServer: RedisServer | undefined;
      let calmRun: Promise<CalmSummary> | undefined;
      let checksDone: () => void = () => {};
      const afterChecks = new Promise<void>((resolve) => {
        checksDone = resolve;
      });
      try {
        [redis, calmServer] = await Promise.all([startDurableRedis(seed), startRedis({ leastPrivilege: true })]);
        const { server, proxy } = redis;
        // No fault reaches the calm phase's server: it gets ready now and begins once the checks are done (so its
        // timing checks and its proxy do not compete with the load phase and the checks for this process).
        calmRun = calm.run({
          after: afterChecks,
          server: calmServer,
          prefix,
          name: `${name}-calm`,
          seed,
          durationMs,
          violations,
          log,
        });
        // Awaited after the checks; a failure meanwhile is not an unhandled rejection.
        calmRun.catch(() => {});

        const eventLog = new EventLog<{ n: number }>(redis.producer, name, { prefix, chain: true });
        // The group must exist before the first append so it sees every event ("start" also covers a late one).
        await consumers.start((slot, incarnation) => ({
          url: server.url,
          prefix,
          name,
          consumer: `c${slot}-${incarnation}`,
        }));

        const faults = runSchedule(
          schedule,
          { servers: [server], proxies: [proxy], processes: consumers.processes },
          { onInject: consumers.respawnKilled },
        );
        const appends = await produce({
          count: events,
          producers: PRODUCERS,
          spreadMs: durationMs,
          violations,
          errorKind: "append-error",
          async call(n) {
            const { id, duplicate } = await eventLog.append({ n }, { idempotencyKey: `event-${n}` });
            if (duplicate) duplicates++;
            acked.set(n, id);
          },
        });
        log(`appended ${acked.size} events (${appends.retries} retries, ${duplicates} deduplicated)`);
        const faultLog = await faults;
        const drained = await tryWaitUntil(() => [...acked.values()].every((id) => processed.has(id)), DRAIN_MS);
        await consumers.stop();

        // The log itself, read directly from the server.
        const reader = new EventLog<{ n: number }>(redis.checker(), name, { prefix, chain: true });
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
        checksDone();
        const calmSummary = await calmRun;
        return scenarioResult(started, violations, {
          scenario: "eventlog",
          operations:
            appends.calls +
            [...processed.values()].reduce((a, b) => a + b, 0) +
            calmSummary.calmEntries +
            calmSummary.calmStarts,
          faultsInjected: faultLog.injected,
          seed,
          details: {
            events,
            acknowledged: acked.size,
            logEntries: entries,
            processedIds: processed.size,
            appendCalls: appends.calls,
            retries: appends.retries,
            duplicates,
            redeliveries,
            consumerRespawns: consumers.respawns,
            consumerCrashes: consumers.crashes,
            deadLetters,
            chainChecked: verify.checked,
            faultsByKind: faultLog.byKind,
            faultErrors: faultLog.entries.filter((e) => e.error !== undefined).map((e) => e.error),
            persistence: "appendonly, appendfsync always",
            durationMs,
            ...calmSummary,
          },
        });
      } finally {
        checksDone();
        await consumers.stop(0);
        // After a failure the calm phase may still run: its processes stop now.
        await calm.stop();
        await redis?.close();
        await calmServer?.stop();
      }
    },
  };
}
