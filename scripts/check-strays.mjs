// After the suite: fail when a redis-server started by the test harness is still running.
// Harness servers run in temp dirs named coordis-redis-*; /proc/<pid>/cwd tells us where each redis-server runs.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const strays = [];
for (const entry of readdirSync("/proc")) {
  if (!/^\d+$/.test(entry)) continue;
  try {
    const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    if (!cmd.startsWith("redis-server") && !cmd.includes("/redis-server")) continue;
    const cwd = readlinkSync(`/proc/${entry}/cwd`);
    if (cwd.includes("coordis-redis-")) strays.push(`${entry} (${cwd})`);
  } catch {
    // process gone or not ours to read
  }
}
if (strays.length > 0) {
  console.error(`stray redis-server processes left by the test harness: ${strays.join(", ")}`);
  process.exit(1);
}
console.log("no stray redis-server processes");
