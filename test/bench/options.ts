// The run's shape: defaults, smoke mode, and the command line (`npm run bench -- ...`).

/** How a run is shaped. */
export interface BenchOptions {
  /** Only scenarios whose id matches (their baselines are added so ratios still work). */
  filter?: RegExp | undefined;
  /** Closed-loop window per scenario per round, ms. */
  durationMs: number;
  /** Sequential (one caller) window per scenario per round, ms. */
  sequentialMs: number;
  /** Interleaved rounds. */
  rounds: number;
  /** Closed-loop warm-up per scenario before round 1, ms. */
  warmupMs: number;
  /** Calls in flight in the closed loop. */
  concurrency: number;
  /** Operations run one by one while counting round trips. */
  roundTripOps: number;
  /** Count round trips of every scenario (false: only those that declare a figure, as the smoke run does). */
  countAllRoundTrips: boolean;
  /** Entities created for memory per entity (0 skips the memory phase). */
  memoryEntities: number;
  /** Entities pre-populated for read scenarios (leaderboard members, cache keys). */
  populate: number;
  /** Smoke mode (reported in the JSON). */
  smoke: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/** Defaults: a full run of every scenario stays under 5 minutes on a 2-core machine. */
export const DEFAULT_OPTIONS: BenchOptions = {
  durationMs: 1_000,
  sequentialMs: 500,
  rounds: 3,
  warmupMs: 300,
  concurrency: 50,
  roundTripOps: 200,
  countAllRoundTrips: true,
  memoryEntities: 10_000,
  populate: 10_000,
  smoke: false,
};

/** `--smoke`: every scenario for about 100 ms, one round. */
export const SMOKE_OPTIONS: BenchOptions = {
  durationMs: 100,
  sequentialMs: 50,
  rounds: 1,
  warmupMs: 30,
  concurrency: 50,
  roundTripOps: 20,
  countAllRoundTrips: false,
  memoryEntities: 0,
  populate: 200,
  smoke: true,
};

/** The flags that take an integer: the option each sets and its smallest value. */
const INTEGER_FLAGS = {
  "--duration": ["durationMs", 10],
  "--rounds": ["rounds", 1],
  "--warmup": ["warmupMs", 0],
  "--concurrency": ["concurrency", 1],
} as const satisfies Record<string, readonly [keyof BenchOptions, number]>;

/** Parses `--filter <regex> --duration <ms> --rounds <n> --smoke` (and `--warmup`, `--concurrency`). */
export function parseArgs(argv: readonly string[]): BenchOptions {
  const smoke = argv.includes("--smoke");
  const options: BenchOptions = { ...(smoke ? SMOKE_OPTIONS : DEFAULT_OPTIONS) };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (Object.hasOwn(INTEGER_FLAGS, arg)) {
      const [key, min] = INTEGER_FLAGS[arg as keyof typeof INTEGER_FLAGS];
      const v = Number(value(i, arg));
      if (!Number.isInteger(v) || v < min) throw new Error(`${arg} must be an integer >= ${min}`);
      options[key] = v;
      i++;
      continue;
    }
    switch (arg) {
      case "--smoke":
        break;
      case "--filter":
        options.filter = new RegExp(value(i, arg));
        i++;
        break;
      case "--help":
      case "-h":
        throw new Error(USAGE);
      default:
        throw new Error(`unknown argument ${arg}\n${USAGE}`);
    }
  }
  if (argv.includes("--duration")) options.sequentialMs = Math.max(10, Math.round(options.durationMs / 2));
  return options;
}

/** Command-line help. */
export const USAGE = `usage: npm run bench -- [--filter <regex>] [--duration <ms per round>] [--rounds <n>] [--smoke]
  --filter <regex>    run scenarios whose id matches (e.g. "lock/", "coordis"); their raw baselines run too
  --duration <ms>     closed-loop window per scenario per round (default 1000; sequential gets half)
  --rounds <n>        interleaved rounds (default 3); figures are medians over rounds
  --warmup <ms>       warm-up per scenario before round 1 (default 300)
  --concurrency <n>   calls in flight in the closed loop (default 50)
  --smoke             tiny durations, one round (what the test suite runs)`;
