// A queue workload for `cost.sh workload`: node queue-workload.mjs <port> <jobs>. 50 producers add jobs one by one
// while 2 workers (concurrency 50) run them, as the bench's end-to-end row does; results kept.
const here = new URL("../../../", import.meta.url);
const { Redis } = await import(new URL("node_modules/ioredis/built/index.js", here).href);
const { Queue, Worker } = await import(new URL("packages/queue/dist/index.js", here).href);
const port = Number(process.argv[2]);
const total = Number(process.argv[3]);
const producer = new Redis({ port });
const conns = [new Redis({ port }), new Redis({ port })];
const queue = new Queue(producer, "bench", {});
let done = 0;
let finished;
const all = new Promise((resolve) => {
  finished = resolve;
});
if (total === 0) finished();
const workers = conns.map(
  (c) =>
    new Worker(
      c,
      "bench",
      () => {
        if (++done === total) finished();
        return 1;
      },
      { concurrency: 50, schedules: false },
    ),
);
let next = 0;
async function lane() {
  while (next < total) {
    next++;
    await queue.add({ n: next });
  }
}
await Promise.all(Array.from({ length: 50 }, lane));
await all;
await Promise.all(workers.map((w) => w.close({ timeoutMs: 0 })));
await queue.close();
producer.disconnect();
for (const c of conns) c.disconnect();
