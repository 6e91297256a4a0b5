// After the suite: fail when a redis-server started by this test run is still running.
// Harness servers run in temp dirs named coordis-redis-<COORDIS_RUN_ID>-*; /proc/<pid>/cwd tells where each
// redis-server runs. Servers killed by the exit hooks may take a moment to disappear, so poll briefly.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const run = process.env.COORDIS_RUN_ID;
const marker = run ? `coordis-redis-${run}-` : "coordis-redis-";

function strays() {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (!cmd.startsWith("redis-server") && !cmd.includes("/redis-server")) continue;
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      if (cwd.includes(marker)) found.push(`${entry} (${cwd})`);
    } catch {
      // process gone or not ours to read
    }
  }
  return found;
}

const deadline = Date.now() + 3_000;
let left = strays();
while (left.length > 0 && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
  left = strays();
}
if (left.length > 0) {
  console.error(`stray redis-server processes left by the test harness: ${left.join(", ")}`);
  process.exit(1);
}
// Silent on success: the suite's last line stays the reporter's "N passed, N failed".
