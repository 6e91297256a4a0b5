import type { Scenario } from "../types.js";
import {
  bullmqBulk,
  bullmqDriver,
  CONCURRENCY,
  coordisBulk,
  coordisDriver,
  coordisQueue,
  rawXaddBulk,
  WORKERS,
} from "./job-queue-drivers.js";
import { BULK, bulk, capacities, endToEnd, halfLoad, LOAD_SHARE } from "./job-queue-measure.js";

const GROUP = "job queue";
const E2E_RAW = "queue/raw-streams";
const BULK_RAW = "job-queue/raw-xadd-pipeline";

/** End-to-end row ids, by library (the half-load rows read their capacity). */
const E2E = { bullmq: "job-queue/bullmq-e2e", coordis: "job-queue/coordis-e2e" } as const;
const BULK_IDS = { bullmq: "job-queue/bullmq-add-bulk", coordis: "job-queue/coordis-add-many" } as const;
const HALF = { bullmq: "job-queue/bullmq-half-load", coordis: "job-queue/coordis-half-load" } as const;

/**
 * Job queue, @coordis/queue against BullMQ in the same rounds: end to end (add + process + complete, results kept) with
 * 2 workers × concurrency 50; bulk add (addMany vs addBulk, 100 jobs per call); add-to-start latency at half of each
 * library's end-to-end capacity. Redis CPU per job is the harness' Redis CPU column of the end-to-end rows.
 */
export function jobQueueScenarios(): Scenario[] {
  const e2eName = `add + process + complete, results kept (${WORKERS} workers × concurrency ${CONCURRENCY})`;
  return [
    {
      id: E2E.bullmq,
      group: GROUP,
      name: `BullMQ Queue.add + Worker: ${e2eName}`,
      kind: "peer",
      topology: "single",
      unit: "jobs",
      baseline: E2E_RAW,
      async setup(ctx) {
        const caps = await capacities(ctx);
        return endToEnd(bullmqDriver(ctx), (v) => caps.set("bullmq", v));
      },
    },
    {
      id: E2E.coordis,
      group: GROUP,
      name: `Coordis Queue.add + Worker: ${e2eName}`,
      kind: "coordis",
      topology: "single",
      unit: "jobs",
      baseline: E2E_RAW,
      reference: E2E.bullmq,
      async setup(ctx) {
        const mod = await coordisQueue();
        const caps = await capacities(ctx);
        return endToEnd(coordisDriver(ctx, mod), (v) => caps.set("coordis", v));
      },
    },
    {
      id: BULK_RAW,
      group: GROUP,
      name: `raw pipeline of ${BULK} XADD (bulk add floor)`,
      kind: "raw",
      topology: "single",
      unit: "jobs",
      setup: async (ctx) => bulk(rawXaddBulk(ctx)),
    },
    {
      id: BULK_IDS.bullmq,
      group: GROUP,
      name: `BullMQ Queue.addBulk, ${BULK} jobs per call`,
      kind: "peer",
      topology: "single",
      unit: "jobs",
      baseline: BULK_RAW,
      setup: async (ctx) => bulk(await bullmqBulk(ctx)),
    },
    {
      id: BULK_IDS.coordis,
      group: GROUP,
      name: `Coordis Queue.addMany, ${BULK} jobs per call`,
      kind: "coordis",
      topology: "single",
      unit: "jobs",
      baseline: BULK_RAW,
      reference: BULK_IDS.bullmq,
      setup: async (ctx) => bulk(coordisBulk(ctx, await coordisQueue())),
    },
    {
      id: HALF.bullmq,
      group: GROUP,
      name: `BullMQ add → start at ${LOAD_SHARE * 100} % of its end-to-end jobs/s`,
      kind: "peer",
      topology: "single",
      unit: "jobs",
      baseline: E2E.bullmq,
      setup: (ctx) => halfLoad(ctx, bullmqDriver(ctx), "bullmq"),
    },
    {
      id: HALF.coordis,
      group: GROUP,
      name: `Coordis add → start at ${LOAD_SHARE * 100} % of its end-to-end jobs/s`,
      kind: "coordis",
      topology: "single",
      unit: "jobs",
      baseline: E2E.coordis,
      async setup(ctx) {
        return halfLoad(ctx, coordisDriver(ctx, await coordisQueue()), "coordis");
      },
    },
  ];
}
