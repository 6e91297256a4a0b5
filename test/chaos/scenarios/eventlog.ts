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
} from "@coordis/testing";
import {
  type ChaosWorker,
  reply,
  spawnWorker,
  stopWorkers,
  until,
  Violations,
  type WorkerMessage,
  waitReady,
} from "../lib/workers.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";

const CONSUMERS = 3;
const PRODUCERS = 16;
/** After the last append, every acknowledged event must be processed within this time, ms. */
const DRAIN_MS = 60_000;

/**
 * Event-log checker: 16 concurrent producers append `events` numbered events through a proxy (latency, dropped
 * connections, partitions) with an idempotency key each, retrying every failed append with the same key until it is
 * acknowledged; 3 consumer processes in one group are SIGKILLed at random and respawned; Redis (AOF,
 * `appendfsync always`) is killed and restarted. Checked at the end: every acknowledged append was processed at
 * least once, the log holds each event exactly once under the id its producer was given, nothing was
 * dead-lettered, and the hash chain verifies.
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
        const drained = await until(() => [...acked.values()].every((id) => processed.has(id)), DRAIN_MS);
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
        return {
          scenario: "eventlog",
          operations: counts.appendCalls + [...processed.values()].reduce((a, b) => a + b, 0),
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
