/** Runs `fn(j)` for j in 0..count-1 with `concurrency` calls in flight (untimed set-up work). */
export async function populate(count: number, fn: (j: number) => Promise<unknown>, concurrency = 50): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
