import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, DurabilityError, type RedisClient, RedisUnavailableError, slotOf } from "@coordis/core";
import { Queue } from "@coordis/queue";
import {
  faultSchedule,
  mulberry32,
  type RedisCluster,
  type RedisServer,
  runSchedule,
  startRedisCluster,
  testPrefix,
  tryWaitUntil,
} from "@coordis/testing";
import { produce } from "../lib/producers.js";
import { scenarioResult } from "../lib/result.js";
import { WorkerPool } from "../lib/worker-pool.js";
import { Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioContext, ScenarioResult } from "../scenario.js";
import { ClusterNodes } from "./cluster-nodes.js";
import { FencedLockWorkers, RECOVERY_SECTIONS } from "./fenced-lock.js";
import { QueueJobsCheck } from "./queue-check.js";

const MASTERS = 3;
/** `cluster-node-timeout`, ms: a master unreachable this long is failed over; the short pauses stay well below. */
const NODE_TIMEOUT_MS = 1_500;
/** Durability of the lock and of the adds: one replica acknowledges, within this time. */
const DURABILITY = { replicas: 1, timeoutMs: 300 } as const;
const LOCK_WORKERS = 3;
const LOCK_TTL_MS = 1_000;
const LOCK_NAME = "cluster-lock";
const QUEUE_WORKERS = 2;
const PRODUCERS = 4;
/** Queue partitions: the name is chosen so that they land on every master. */
const PARTITIONS = 4;
const LEASE_MS = 1_500;
/** Jobs added (and completed) after every failover. */
const RECOVERY_JOBS = 10;
/** Sections and jobs must be accepted within this time after the workers started and after each failover, ms. */
const RECOVERY_MS = 30_000;
/** A failover (promotion seen on the replica) must come within this time of the kill or pause, ms. */
const FAILOVER_TIMEOUT_MS = 30_000;
/** The cluster must settle (victim back as a replica with its link up, every state ok) within this time, ms. */
const SETTLE_TIMEOUT_MS = 60_000;
/** Calm time between a failover's recovery and the next failover, with short pauses of nodes in it, ms. */
const BETWEEN_MS: readonly [number, number] = [1_500, 4_000];
/** The short pauses: well below the node timeout, so none of them makes the cluster fail a node over. */
const SHORT_PAUSE_MS: readonly [number, number] = [100, 600];
/** After the last failover, every acknowledged job must be completed within this time, ms. */
const DRAIN_MS = 60_000;

interface Failover {
  mode: "kill" | "pause";
  lockShard: boolean;
  from: number;
  to: number;
  /** Kill or pause until the replica answered as master, ms. */
  ms: number;
  /** Promotion until the cluster settled again (the victim a synced replica of its old replica), ms. */
  settleMs: number;
}

/** A queue name whose {@link PARTITIONS} partitions' slots are served by every master of `views`' slot map. */
async function spreadQueueName(nodes: ClusterNodes, from: RedisServer, seed: number): Promise<string> {
  for (let k = 0; ; k++) {
    const name = `cluster-queue-${seed}-${k}`;
    const owners = new Set<number | undefined>();
    for (let i = 0; i < PARTITIONS; i++) owners.add((await nodes.ownerOf(slotOf(`{${name}#${i}}`), from))?.port);
    if (owners.size === MASTERS && !owners.has(undefined)) return name;
  }
}

/**
 * Cluster failover checker: a Redis Cluster of 3 masters with a replica each (no persistence, node timeout 1.5 s),
 * clients as the least-privilege user. 3 worker processes take one fenced Mutex with `durability: { replicas: 1 }` and
 * do read-modify-writes on the parent's fenced register (as lock-failover); 4 producers add numbered jobs (with
 * durability, retried until acknowledged) to a queue of 4 partitions spread over the masters, 2 worker processes
 * apply each job's effect to a fenced register per job. Again and again a master (the lock's first, then drawn from
 * the seed) is SIGKILLed or SIGSTOPped until its replica is promoted; a killed one restarts empty (nodes.conf kept)
 * and rejoins as a replica, a paused one resumes and is demoted; the cluster settles before the next failover, and
 * between failovers nodes are paused for less than the node timeout. Checked: the lock history (lock-check.ts), the
 * queue's jobs (queue-check.ts), and progress (sections and jobs) after every failover.
 */
async function runClusterFailover({ seed, durationMs, log }: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const random = mulberry32(seed);
  const violations = new Violations();
  const prefix = testPrefix("chaos");
  const failovers: Failover[] = [];
  let shortPauses = 0;
  const jobs = new QueueJobsCheck(violations);
  // The processes load while the cluster starts.
  const lock = new FencedLockWorkers(LOCK_WORKERS, violations);
  const queuePool = new WorkerPool({
    file: "queue-worker.ts",
    count: QUEUE_WORKERS,
    crashes: violations,
    onMessage: (msg, worker) => jobs.onMessage(msg, worker),
  });
  let cluster: RedisCluster | undefined;
  let nodes: ClusterNodes | undefined;
  const clients: RedisClient[] = [];
  try {
    cluster = await startRedisCluster({
      masters: MASTERS,
      replicasPerMaster: 1,
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      leastPrivilege: true,
      config: { "repl-diskless-sync-delay": 0 },
    });
    const c = cluster;
    const n = new ClusterNodes(c);
    nodes = n;
    const views = await n.waitSettled(MASTERS, SETTLE_TIMEOUT_MS);
    if (views === undefined) throw new Error("the cluster's replicas did not come online");
    const anyMaster = (views.find((v) => v.role === "master") as { node: RedisServer }).node;
    const name = await spreadQueueName(n, anyMaster, seed);
    await Promise.all([
      lock.start((slot) => ({
        mode: "mutex",
        urls: [c.url],
        prefix,
        name: LOCK_NAME,
        ttlMs: LOCK_TTL_MS,
        waitMs: 3_000,
        holdMaxMs: 20,
        commandTimeoutMs: 1_500,
        nodeTimeoutMs: 200,
        seed: (seed + slot * 7919) >>> 0,
        durability: DURABILITY,
      })),
      queuePool.start(() => ({
        url: c.url,
        prefix,
        name,
        leaseMs: LEASE_MS,
        redeliveryMs: 50,
        keepCompleted: 1_000_000,
        partitions: PARTITIONS,
      })),
    ]);
    log(`cluster and workers ready after ${Math.round(performance.now() - started)} ms; queue ${name}`);

    const producer = connect(c.url, { commandTimeoutMs: 1_500 });
    clients.push(producer);
    const queue = new Queue<number>(producer, name, {
      prefix,
      partitions: PARTITIONS,
      durability: DURABILITY,
      defaults: { attempts: 1_000, backoff: { type: "fixed", delayMs: 10 } },
    });
    const unconfirmed = { adds: 0 };
    /** Adds job `id`; an add the replica did not confirm is retried like one whose outcome is unknown. */
    const add = async (n: number, id: string) => {
      try {
        const { duplicate } = await queue.add(n, { id });
        if (duplicate) jobs.counts.duplicates++;
        jobs.acked.add(id);
      } catch (err) {
        if (!(err instanceof DurabilityError)) throw err;
        unconfirmed.adds++;
        throw new RedisUnavailableError(err.message, { cause: err });
      }
    };
    const jobCount = Math.max(500, Math.round(durationMs / 10));
    const adds = produce({
      count: jobCount,
      producers: PRODUCERS,
      spreadMs: durationMs,
      violations,
      errorKind: "add-error",
      call: (i) => add(i, `job-${i}`),
    });
    let addCalls = 0;

    /** Sections accepted by the register and jobs completed (a batch added now) within RECOVERY_MS, after `what`. */
    const progress = async (what: string, batch: number) => {
      const ids = Array.from({ length: RECOVERY_JOBS }, (_, i) => `after-${batch}-${i}`);
      const jobsDone = async () => {
        const c = await produce({
          count: ids.length,
          producers: 2,
          violations,
          errorKind: "add-error",
          call: (i) => add(i, ids[i] as string),
        });
        addCalls += c.calls;
        if (!(await tryWaitUntil(() => ids.every((id) => jobs.effected(id)), RECOVERY_MS))) {
          const done = ids.filter((id) => jobs.effected(id)).length;
          violations.add("no-progress", `only ${done} of ${ids.length} jobs added after ${what} completed`);
        }
      };
      await Promise.all([lock.progress(RECOVERY_SECTIONS, RECOVERY_MS, what), jobsDone()]);
    };

    await progress("the workers started", 0);
    await sleep(random() * Math.min(2_000, durationMs / 2));
    const lockSlot = slotOf(`{${LOCK_NAME}}`);
    const end = performance.now() + durationMs;
    for (let round = 1; ; round++) {
      const settled = await n.waitSettled(MASTERS, SETTLE_TIMEOUT_MS);
      if (settled === undefined) {
        violations.add(
          "no-settle",
          `the cluster did not settle within ${SETTLE_TIMEOUT_MS} ms before failover ${round}`,
        );
        break;
      }
      const masters = settled.filter((v) => v.role === "master").map((v) => v.node);
      const lockOwner = await n.ownerOf(lockSlot, masters[0] as RedisServer);
      const others = masters.filter((m) => m !== lockOwner);
      const lockShard = round === 1 || random() < 0.5 || lockOwner === undefined;
      const victim = lockShard
        ? (lockOwner as RedisServer)
        : (others[Math.floor(random() * others.length)] as RedisServer);
      const replica = n.byPort(settled.find((v) => v.role === "slave" && v.masterPort === victim.port)?.node.port);
      if (replica === undefined) throw new Error(`no replica of ${victim.port} in the settled cluster`);
      const mode = random() < 0.5 ? "kill" : "pause";
      const at = performance.now();
      if (mode === "kill") await victim.kill();
      else victim.pause();
      const promoted = await tryWaitUntil(async () => (await n.view(replica)).role === "master", {
        timeoutMs: FAILOVER_TIMEOUT_MS,
        intervalMs: 50,
      });
      const ms = Math.round(performance.now() - at);
      // Back: a killed master restarts empty (its nodes.conf kept) and learns it lost its slots, a paused one resumes.
      if (mode === "kill") await victim.restart();
      else victim.resume();
      if (!promoted) {
        violations.add("no-failover", `${replica.port} not promoted within ${ms} ms of the ${mode} of ${victim.port}`);
        break;
      }
      const back = performance.now();
      const rejoined = await n.waitSettled(MASTERS, SETTLE_TIMEOUT_MS);
      const victimView = rejoined?.find((v) => v.node === victim);
      const settleMs = Math.round(performance.now() - back);
      failovers.push({ mode, lockShard, from: victim.port, to: replica.port, ms, settleMs });
      log(
        `failover ${round}: ${mode} ${victim.port}${lockShard ? " (lock)" : ""} -> ${replica.port} in ${ms} ms, settled in ${settleMs} ms`,
      );
      if (victimView?.role !== "slave" || victimView.masterPort !== replica.port) {
        violations.add(
          "no-rejoin",
          `${victim.port} did not rejoin as a replica of ${replica.port}: ${victimView?.role}`,
        );
        break;
      }
      await progress(`failover ${round}`, round);
      if (performance.now() >= end) break;
      // Calm time (pacing) with pauses of random nodes shorter than the node timeout.
      const between = Math.round(BETWEEN_MS[0] + random() * (BETWEEN_MS[1] - BETWEEN_MS[0]));
      const pauses = faultSchedule({
        seed: (seed + round * 7_919) >>> 0,
        generate: {
          durationMs: between,
          faults: ["pause"],
          meanIntervalMs: 600,
          targets: { servers: c.nodes.length, proxies: 0 },
          faultMs: SHORT_PAUSE_MS,
        },
      });
      shortPauses += (await runSchedule(pauses, { servers: c.nodes })).injected;
    }

    const addCounts = await adds;
    addCalls += addCounts.calls;
    log(`added ${jobs.acked.size} jobs (${addCounts.retries} retries, ${unconfirmed.adds} unconfirmed by the replica)`);
    const checker = connect(c.url, { commandTimeoutMs: 10_000 });
    clients.push(checker);
    const reader = new Queue<number, number>(checker, name, { prefix, partitions: PARTITIONS });
    const drained = async () => {
      const counts = await reader.counts();
      return (counts.completed >= jobs.acked.size || counts.dead > 0) && jobs.idle();
    };
    await tryWaitUntil(drained, { timeoutMs: DRAIN_MS, intervalMs: 100 });
    const lockResult = await lock.finish();
    await queuePool.stop();
    const completed = await jobs.check(reader);
    await reader.close();
    await queue.close();
    return scenarioResult(started, violations, {
      scenario: "cluster-failover",
      operations: lockResult.operations + addCalls + jobs.counts.deliveries,
      faultsInjected: failovers.length + shortPauses,
      seed,
      details: {
        ...lockResult.details,
        failovers,
        failoversOfLockShard: failovers.filter((f) => f.lockShard).length,
        shortPauses,
        jobs: jobCount,
        acknowledged: jobs.acked.size,
        completed,
        redelivered: jobs.redelivered,
        addCalls,
        unconfirmedAdds: unconfirmed.adds,
        ...jobs.counts,
        queueCrashes: queuePool.crashes,
        lockWorkers: LOCK_WORKERS,
        ttlMs: LOCK_TTL_MS,
        durability: DURABILITY,
        partitions: PARTITIONS,
        topology: `Cluster, ${MASTERS} masters + 1 replica each, node timeout ${NODE_TIMEOUT_MS} ms, no persistence`,
        durationMs,
      },
    });
  } finally {
    await lock.pool.stop(0);
    await queuePool.stop(0);
    for (const client of clients) client.disconnect();
    nodes?.close();
    await cluster?.stop();
  }
}

/** Lock and queue across Redis Cluster failovers (automatic promotion of a master's replica). */
export const clusterFailover: ChaosScenario = {
  name: "cluster-failover",
  description:
    "Cluster 3 masters + replicas: Mutex with durability { replicas: 1 } + fenced register, queue of 4 partitions with durable adds; masters SIGKILLed (restart empty) or SIGSTOPped past the node timeout until promoted, short pauses",
  defaultDurationMs: 120_000,
  run: runClusterFailover,
};
