import { coordisExports, type EventLogModule } from "../coordis.js";
import { type Scenario, Unavailable } from "../types.js";

const GROUP = "event log";
const BASELINE = "eventlog/raw-xadd";

/** The event every append writes (about 40 bytes of JSON). */
const event = (n: number) => ({ type: "order-placed", n });

function coordisAppend(id: string, name: string, variant: "plain" | "idempotent" | "chained"): Scenario {
  return {
    id,
    group: GROUP,
    name,
    kind: "coordis",
    topology: "single",
    baseline: BASELINE,
    ...(variant === "plain" ? {} : { reference: "eventlog/coordis-plain" }),
    roundTrips: 1,
    memoryEntity: "entry",
    async setup(ctx) {
      const { EventLog } = await coordisExports<EventLogModule>("eventlog", ["EventLog"]);
      const redis = ctx.client();
      const options = { prefix: ctx.prefix, chain: variant === "chained" };
      const log = new EventLog(redis, "orders", options);
      const memLog = new EventLog(redis, "mem", options);
      const append = (target: typeof log, n: number) =>
        variant === "idempotent" ? target.append(event(n), { idempotencyKey: `op-${n}` }) : target.append(event(n));
      return { op: (n) => append(log, n), entity: (j) => append(memLog, j) };
    },
  };
}

/** Event log: raw XADD against Coordis append (plain, idempotent, hash-chained). */
export function eventLogScenarios(): Scenario[] {
  return [
    {
      id: BASELINE,
      group: GROUP,
      name: "raw XADD",
      kind: "raw",
      topology: "single",
      memoryEntity: "entry",
      async setup(ctx) {
        const redis = ctx.client();
        return {
          op: (n) => redis.xadd(`${ctx.prefix}:orders`, "*", "data", JSON.stringify(event(n))),
          entity: (j) => redis.xadd(`${ctx.prefix}:mem`, "*", "data", JSON.stringify(event(j))),
        };
      },
    },
    coordisAppend("eventlog/coordis-plain", "Coordis append", "plain"),
    {
      // Micro-batched append: one log shared by every caller in flight (batching is per instance).
      id: "eventlog/coordis-plain-batched",
      group: GROUP,
      name: "Coordis append, batched",
      kind: "coordis",
      topology: "single",
      baseline: BASELINE,
      reference: "eventlog/coordis-plain",
      roundTrips: 1,
      roundTripsBound: "at-most",
      roundTripConcurrency: "closed-loop",
      roundTripsNote: "calls in the same event-loop turn share one script call",
      async setup(ctx) {
        const { EventLog } = await coordisExports<EventLogModule>("eventlog", ["EventLog"]);
        const log = new EventLog(ctx.client(), "orders", { prefix: ctx.prefix, batch: true });
        if ((log as { batch?: unknown }).batch === undefined) throw new Unavailable("EventLog has no batch mode");
        return { op: (n) => log.append(event(n)) };
      },
    },
    coordisAppend("eventlog/coordis-idempotent", "Coordis append (idempotency key)", "idempotent"),
    coordisAppend("eventlog/coordis-chained", "Coordis append (hash chain)", "chained"),
  ];
}
