import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, coreScripts, type RedisClient, RedisUnavailableError, runScript } from "@coordis/core";
import {
  DeadlineExceededError,
  describeSchedule,
  type FaultKind,
  faultSchedule,
  runSchedule,
  startProxy,
  startRedis,
  testPrefix,
  tryWaitUntil,
  Watchdog,
} from "@coordis/testing";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";

/** Clients running the probe concurrently. */
const CLIENTS = 8;
/** The clients' command timeout, ms. */
const COMMAND_TIMEOUT_MS = 500;
/** Slack on top of the command timeout for a busy 2-core machine (event-loop delay, GC), ms. */
const DEADLINE_MARGIN_MS = 1_000;
/** After the last fault is healed, every client must complete a probe within this time, ms. */
const RECOVERY_MS = 5_000;
/** How long a call that missed its deadline may still take before it counts as hung, ms. */
const HANG_GRACE_MS = 3_000;
const FAULTS: readonly FaultKind[] = ["pause", "kill", "restart", "latency", "drop", "blackhole"];

/**
 * The script path under faults: N clients run `coreScripts.probe` (EVALSHA with NOSCRIPT fallback) through a proxy
 * while a seeded schedule adds latency, drops connections, blackholes the proxy and pauses, kills and restarts the
 * server. Checked: every call resolves or rejects with `RedisUnavailableError` within commandTimeout + margin, no
 * promise hangs, every reply belongs to its own call (no protocol desync), and service recovers after the faults.
 */
export const scriptPath: ChaosScenario = {
  name: "script-path",
  description: "probe script via proxy under latency/drop/blackhole/pause/kill/restart; deadlines, no hangs",
  defaultDurationMs: 60_000,
  async run({ seed, durationMs, log }): Promise<ScenarioResult> {
    const started = performance.now();
    const deadlineMs = COMMAND_TIMEOUT_MS + DEADLINE_MARGIN_MS;
    const meanIntervalMs = Math.min(2_000, Math.max(300, Math.round(durationMs / 10)));
    const schedule = faultSchedule({
      seed,
      generate: {
        durationMs,
        faults: FAULTS,
        meanIntervalMs,
        targets: { servers: 1, proxies: 1 },
        faultMs: [100, Math.max(200, Math.round(meanIntervalMs * 1.5))],
        latencyMs: [20, 400],
      },
    });
    log(describeSchedule(schedule));

    const counts = { ok: 0, unavailable: 0, wrongReply: 0, unexpectedError: 0, deadlineMissed: 0 };
    const samples: string[] = [];
    const violation = (text: string) => {
      if (samples.length < 10) samples.push(text);
    };
    const watchdog = new Watchdog();
    // Keys under the Coordis prefix: the clients run as the least-privilege user (keys `coordis:*` only).
    const prefix = testPrefix("chaos");
    const server = await startRedis({ leastPrivilege: true });
    const proxy = await startProxy({ target: server, seed });
    const clients: RedisClient[] = [];
    let stop = false;
    const lastOk: number[] = [];
    try {
      for (let i = 0; i < CLIENTS; i++) {
        clients.push(connect(proxy.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS }));
        lastOk.push(0);
      }
      const loop = async (i: number) => {
        const client = clients[i] as RedisClient;
        const keys = [`${prefix}:{script-path-${i}}:v`, `${prefix}:{script-path-${i}}:c`] as const;
        for (let seq = 0; !stop; seq++) {
          const value = `${i}:${seq}`;
          const what = `client ${i} probe #${seq}`;
          try {
            const reply = await watchdog.watch(
              runScript(client, coreScripts.probe, keys, [value, 60_000]),
              deadlineMs,
              what,
            );
            if (reply[0] === value) {
              counts.ok++;
              lastOk[i] = performance.now();
            } else {
              counts.wrongReply++;
              violation(`${what}: reply ${JSON.stringify(reply)} belongs to another call`);
            }
          } catch (err) {
            if (err instanceof DeadlineExceededError) {
              counts.deadlineMissed++;
              violation(`${what}: ${err.message}`);
            } else if (err instanceof RedisUnavailableError) {
              counts.unavailable++;
            } else {
              counts.unexpectedError++;
              violation(`${what}: unexpected ${(err as Error).name}: ${(err as Error).message}`);
            }
            await sleep(5); // no hot loop while everything fails fast
          }
        }
      };
      // Warm up: every client connected before the faults start (the probe script is loaded by the first calls).
      await Promise.all(clients.map((c) => c.ping()));
      const loops = clients.map((_, i) => loop(i));
      const faultLog = await runSchedule(schedule, { servers: [server], proxies: [proxy] });
      log(`faults done: ${faultLog.injected} injected, ${faultLog.repaired} repaired by the final sweep`);

      // Liveness: after the faults, every client gets a successful call within RECOVERY_MS.
      const healedAt = performance.now();
      await tryWaitUntil(() => lastOk.every((t) => t >= healedAt), { timeoutMs: RECOVERY_MS, intervalMs: 20 });
      const notRecovered = lastOk.map((t, i) => (t < healedAt ? i : -1)).filter((i) => i >= 0);
      for (const i of notRecovered) violation(`client ${i} had no successful call within ${RECOVERY_MS} ms of heal`);
      stop = true;
      await Promise.all(loops);

      // A call that missed its deadline may still settle late; one that never settles hangs.
      await tryWaitUntil(() => watchdog.pending === 0, { timeoutMs: HANG_GRACE_MS, intervalMs: 20 });
      const hung = watchdog.hanging.length;
      for (const h of watchdog.hanging.slice(0, 3)) violation(`${h.what}: still pending ${HANG_GRACE_MS} ms after`);

      const violations = counts.deadlineMissed + counts.wrongReply + counts.unexpectedError + notRecovered.length;
      return {
        scenario: "script-path",
        operations: watchdog.watched,
        faultsInjected: faultLog.injected,
        violations,
        seed,
        elapsedMs: Math.round(performance.now() - started),
        details: {
          ...counts,
          hung,
          notRecovered: notRecovered.length,
          faultsByKind: faultLog.byKind,
          faultErrors: faultLog.entries.filter((e) => e.error !== undefined).map((e) => e.error),
          clients: CLIENTS,
          commandTimeoutMs: COMMAND_TIMEOUT_MS,
          deadlineMs,
          durationMs,
        },
        samples,
      };
    } finally {
      stop = true;
      for (const c of clients) c.disconnect();
      await proxy.close();
      await server.stop();
    }
  },
};
