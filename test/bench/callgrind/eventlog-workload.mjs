// An event-log workload for `cost.sh workload`: EL_VARIANT=<raw|plain|idempotent|chained> node
// eventlog-workload.mjs <port> <appends>. 50 callers append one event each at a time to one log, as the bench's
// event log rows do: a raw XADD, or EventLog.append plain, with a new idempotency key per append, or hash-chained.
const here = new URL("../../../", import.meta.url);
const { Redis } = await import(new URL("node_modules/ioredis/built/index.js", here).href);
const { safeRedisOptions } = await import(new URL("packages/core/dist/index.js", here).href);
const { EventLog } = await import(new URL("packages/eventlog/dist/index.js", here).href);
const port = Number(process.argv[2]);
const total = Number(process.argv[3]);
const variant = process.env.EL_VARIANT ?? "plain";
if (!["raw", "plain", "idempotent", "chained"].includes(variant)) throw new Error(`unknown EL_VARIANT ${variant}`);
const redis = new Redis({ ...safeRedisOptions, port });
const log = new EventLog(redis, "orders", { prefix: "bench", chain: variant === "chained" });
const event = (n) => ({ type: "order-placed", n });
let next = 0;
async function lane() {
  while (next < total) {
    const n = ++next;
    if (variant === "raw") await redis.xadd("bench:orders", "*", "data", JSON.stringify(event(n)));
    else if (variant === "idempotent") await log.append(event(n), { idempotencyKey: `op-${n}` });
    else await log.append(event(n));
  }
}
await Promise.all(Array.from({ length: 50 }, lane));
redis.disconnect();
