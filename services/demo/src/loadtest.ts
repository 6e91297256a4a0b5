/**
 * `npm run loadtest`: autocannon against the demo's replicas, round-robin, for a bounded time; prints requests per
 * second, latency percentiles and the share of 429 answers. Targets the replicas of a running `npm start` (same
 * `HOST` / `PORT` / `REPLICAS`), or `LOADTEST_URLS` (comma-separated, loopback only); when none answers it starts its
 * own stack and stops it afterwards. `LOADTEST_SECONDS` (1–60, default 10), `LOADTEST_CONNECTIONS` (default 30),
 * `LOADTEST_KEYS` (API keys to spread over, 1–1000, default 20: each has the demo's 10 req/s burst budget). The keys
 * are issued through the admin endpoint, with `ADMIN_TOKEN` (the token `npm start` printed) or the token of the stack
 * it started; without a token every request is budgeted by this machine's address.
 */
import autocannon from "autocannon";
import { DEFAULT_PORT, localUrl } from "./config.js";
import { issueKeys, launch, type Stack, stopWithParent } from "./launch.js";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

function bounded(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${name} must be ${min}–${max}`);
  return value;
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const seconds = bounded("LOADTEST_SECONDS", 10, 1, 60);
  const keyCount = bounded("LOADTEST_KEYS", 20, 1, 1_000);
  let urls = (process.env.LOADTEST_URLS ?? "")
    .split(",")
    .map((u) => u.trim().replace(/\/$/, ""))
    .filter((u) => u !== "");
  if (urls.length === 0) {
    const base = bounded("PORT", DEFAULT_PORT, 1, 65_535);
    const count = bounded("REPLICAS", 3, 1, 32);
    urls = Array.from({ length: count }, (_, i) => localUrl(process.env.HOST || "127.0.0.1", base + i));
  }
  for (const u of urls) {
    if (!LOOPBACK.has(new URL(u).hostname)) throw new Error(`refusing to load-test ${u}: localhost only`);
  }
  let stack: Stack | undefined;
  const live = (await Promise.all(urls.map(answers))).every(Boolean);
  if (!live) {
    process.stdout.write("no demo answers at those URLs; starting one for the load test…\n");
    stack = await launch({ log: () => {} });
    // Stopped early (Ctrl-C, SIGTERM, or npm gone): the stack it started goes too, its Redis dir included.
    const started = stack;
    const stopEarly = () => void started.stop().finally(() => process.exit(130));
    process.once("SIGINT", stopEarly);
    process.once("SIGTERM", stopEarly);
    stopWithParent(stopEarly);
    urls = stack.urls;
  }
  // Whatever fails from here (a refused admin token, a bad setting), the stack this run started is stopped.
  try {
    const connections = bounded("LOADTEST_CONNECTIONS", 10 * urls.length, urls.length, 1_000);
    const adminToken = stack?.adminToken ?? process.env.ADMIN_TOKEN;
    const keys = adminToken ? await issueKeys(urls[0] as string, adminToken, keyCount) : [];
    if (keys.length === 0)
      process.stdout.write("ADMIN_TOKEN is not set: no API keys, every request uses the address budget\n");
    const keyHeader = (): Record<string, string> =>
      keys.length === 0 ? {} : { "x-api-key": keys[Math.floor(Math.random() * keys.length)] as string };
    process.stdout.write(
      `autocannon: ${connections} connections for ${seconds} s, round-robin over ${urls.join(", ")}, ${keys.length} API keys\n`,
    );
    const result = await autocannon({
      url: urls,
      connections,
      duration: seconds,
      requests: [
        {
          method: "POST",
          path: "/v1/scores",
          setupRequest: (req) => ({
            ...req,
            headers: { "content-type": "application/json", ...keyHeader() },
            body: JSON.stringify({
              playerId: `p${Math.floor(Math.random() * 500)}`,
              score: Math.floor(Math.random() * 1e6),
            }),
          }),
        },
        {
          method: "GET",
          path: "/v1/leaderboards/all/top?n=10",
          setupRequest: (req) => ({ ...req, headers: keyHeader() }),
        },
      ],
    });
    const total = Object.values(result.statusCodeStats).reduce((sum, s) => sum + Number(s.count), 0);
    const limited = Number(result.statusCodeStats["429"]?.count ?? 0);
    const codes = Object.entries(result.statusCodeStats)
      .map(([code, s]) => `${code}: ${s.count}`)
      .join(", ");
    const l = result.latency;
    const out = [
      "",
      `requests/s   ${result.requests.average.toFixed(0)} average (${result.requests.total} in ${seconds} s)`,
      `latency ms   p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p99_9}  max ${l.max}`,
      `429 share    ${total === 0 ? "n/a" : `${((limited / total) * 100).toFixed(1)} %`} (${limited} of ${total})`,
      `status codes ${codes || "none"}; errors ${result.errors}, timeouts ${result.timeouts}`,
      "",
    ];
    process.stdout.write(`${out.join("\n")}\n`);
  } finally {
    await stack?.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`loadtest failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
