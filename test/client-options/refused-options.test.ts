/**
 * ioredis options Coordis cannot work with: every primitive refuses a client built with one at construction, with an
 * InvalidArgumentError naming the option and what to do instead, and the client the message suggests works. Without
 * the refusal these clients broke silently (see each case), so every test here fails on a Coordis that accepts them.
 */
import { Cache, RedisSessionStore } from "@coordis/cache";
import { assertSafeClient, clientSafetyProblems, InvalidArgumentError, safeRedisOptions } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { Leaderboard } from "@coordis/leaderboard";
import { Mutex, Redlock, Semaphore } from "@coordis/lock";
import { PubSub } from "@coordis/pubsub";
import { Queue, Worker } from "@coordis/queue";
import { ConcurrencyLimiter, RateLimiter } from "@coordis/ratelimit";
import { type RedisServer, startRedis } from "@coordis/testing";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Check,
  cacheCheck,
  eventLogCheck,
  type MakeClient,
  mutexCheck,
  queueCheck,
  rateLimitCheck,
  sessionCheck,
} from "./exercise.js";

let server: RedisServer;
const clients: Array<Redis | Cluster> = [];
beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await server.stop();
});

function client(options: RedisOptions): Redis {
  const c = new Redis({ ...safeRedisOptions, host: server.host, port: server.port, ...options });
  c.on("error", () => {});
  clients.push(c);
  return c;
}

/** Every primitive's constructor (and Redlock's nodes), each given `redis`. */
const CONSTRUCTORS: ReadonlyArray<readonly [string, (redis: Redis | Cluster) => unknown]> = [
  ["Mutex", (r) => new Mutex(r, "n")],
  ["Semaphore", (r) => new Semaphore(r, "n", { permits: 1 })],
  ["Redlock", (r) => new Redlock([r], "n")],
  ["RateLimiter", (r) => new RateLimiter(r, { rules: [{ limit: 1, windowMs: 1_000 }], batch: true })],
  ["ConcurrencyLimiter", (r) => new ConcurrencyLimiter(r, { limit: 1, ttlMs: 1_000 })],
  ["Leaderboard", (r) => new Leaderboard(r, "n")],
  ["PubSub", (r) => new PubSub(r)],
  ["EventLog", (r) => new EventLog(r, "n")],
  ["Cache", (r) => new Cache(r, { namespace: "n", ttlMs: 1_000 })],
  ["RedisSessionStore", (r) => new RedisSessionStore(r)],
  ["Queue", (r) => new Queue(r, "n")],
  ["Worker", (r) => new Worker(r, "n", async () => {})],
];

/** The error `construct(redis)` throws (failing the test when it throws none). */
function refusal(construct: () => unknown): InvalidArgumentError {
  let thrown: unknown;
  try {
    construct();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(InvalidArgumentError);
  return thrown as InvalidArgumentError;
}

interface Case {
  readonly label: string;
  /** The refused client (connected when the case needs it). */
  readonly refused: () => Promise<Redis>;
  /** What the message must say: the option, and the fix. */
  readonly says: readonly RegExp[];
  /** The client the message tells the user to build instead. */
  readonly fixed: (refused: Redis) => Redis;
  /** The checks that broke with the refused option, run through the fixed client. */
  readonly checks: readonly Check[];
}

const CASES: readonly Case[] = [
  {
    // Was: queue.result() never heard of its job (the finish script announces it on the unprefixed channel, ioredis
    // SSUBSCRIBEs the prefixed one: ResultTimeoutError, or 5 s late); RedisSessionStore length()/all() found nothing
    // (SCAN MATCH is not prefixed).
    label: 'keyPrefix: "app:"',
    refused: async () => client({ keyPrefix: "app:" }),
    says: [/keyPrefix "app:"/, /prefix option/, /redis\.duplicate\(\{ keyPrefix: undefined \}\)/],
    fixed: (r) => r.duplicate({ keyPrefix: undefined }),
    checks: [queueCheck, sessionCheck],
  },
  {
    // Was: a RateLimiter with limit 3 allowed a 4th call (reply "-1" read as allowed), Mutex.acquire() hung, Cache
    // get failed with an untyped SyntaxError, Queue threw "partitions: 1 ... but this client was given partitions: 1".
    label: "stringNumbers: true",
    refused: async () => client({ stringNumbers: true }),
    says: [/stringNumbers: true/, /redis\.duplicate\(\{ stringNumbers: false \}\)/],
    fixed: (r) => r.duplicate({ stringNumbers: false }),
    checks: [rateLimitCheck, mutexCheck, cacheCheck, queueCheck],
  },
  {
    // Was: an EventLog tail never yielded an entry (XREAD's reply arrives as an object).
    label: 'protocol: 3, replyMapping: "resp3"',
    refused: async () => client({ protocol: 3, replyMapping: "resp3" }),
    says: [/replyMapping: "resp3"/, /redis\.duplicate\(\{ replyMapping: "legacy" \}\)/],
    fixed: (r) => r.duplicate({ replyMapping: "legacy" }),
    checks: [eventLogCheck],
  },
  {
    // Was: every call failed at once with RedisUnavailableError "Command timed out" while Redis was fine (Node fires a
    // timer above 2^31 - 1 ms after 1 ms).
    label: "commandTimeout: 3e9",
    refused: async () => client({ commandTimeout: 3e9, lazyConnect: true }),
    says: [/commandTimeout 3000000000 is above 2147483647 ms/, /at most 600000 ms/],
    fixed: (r) => r.duplicate({ commandTimeout: 2_000 }),
    checks: [mutexCheck],
  },
  {
    label: "commandTimeout: Infinity",
    refused: async () => client({ commandTimeout: Number.POSITIVE_INFINITY, lazyConnect: true }),
    says: [/commandTimeout Infinity is above/],
    fixed: (r) => r.duplicate({ commandTimeout: 2_000 }),
    checks: [mutexCheck],
  },
  {
    // Was: the first call failed with ScriptError "Redis script failed: Connection in subscriber mode" (no Redis
    // error at all: ioredis refuses the command).
    label: "a RESP2 client in subscriber mode",
    refused: async () => {
      const c = client({ protocol: 2 });
      await c.subscribe("someone-elses-channel");
      return c;
    },
    says: [/subscriber mode/, /RESP2/, /redis\.duplicate\(\)/],
    fixed: (r) => r.duplicate(),
    checks: [mutexCheck, rateLimitCheck],
  },
];

describe.each(CASES)("a client built with $label", ({ label, refused, says, fixed, checks }) => {
  it("is refused by every primitive's constructor, naming the option and the fix", async () => {
    const redis = await refused();
    for (const [name, construct] of CONSTRUCTORS) {
      const err = refusal(() => construct(redis));
      expect(err.code, name).toBe("ERR_INVALID_ARGUMENT");
      expect(err.argument, name).toBe("redis");
      for (const re of says) expect(err.message, name).toMatch(re);
    }
    // assertSafeClient (the Fastify plugin's check) and clientSafetyProblems say the same.
    const err = refusal(() => assertSafeClient(redis, "options.redis"));
    expect(err.argument).toBe("options.redis");
    for (const re of says) expect(err.message).toMatch(re);
    expect(clientSafetyProblems(redis).join("; ")).toMatch(says[0] as RegExp);
  });

  it("the client the message suggests instead works", async () => {
    const redis = await refused();
    const make: MakeClient = async () => {
      const c = fixed(redis);
      c.on("error", () => {});
      clients.push(c);
      return c;
    };
    const tag = label.replace(/[^A-Za-z0-9]/g, "");
    for (const check of checks) await check(make, `fix-${tag}`);
  });
});

describe("a Cluster client with keyPrefix", () => {
  it("is refused whether the prefix is in its options or in its redisOptions", () => {
    for (const options of [{ keyPrefix: "app:" }, { redisOptions: { ...safeRedisOptions, keyPrefix: "app:" } }]) {
      const cluster = new Cluster([{ host: "127.0.0.1", port: 1 }], {
        lazyConnect: true,
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
        redisOptions: { ...safeRedisOptions },
        ...options,
      });
      clients.push(cluster);
      expect(refusal(() => new Mutex(cluster, "n")).message).toMatch(/keyPrefix "app:"/);
    }
  });
});

describe("a client whose commandTimeout is long but below Node's timer limit", () => {
  it("is accepted with a CoordisWarning naming commandTimeout; assertSafeClient refuses it", async () => {
    const redis = client({ commandTimeout: 1_000_000, lazyConnect: true });
    const seen: Error[] = [];
    const listener = (w: Error) => void seen.push(w);
    process.on("warning", listener);
    try {
      new Mutex(redis, "n");
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", listener);
    }
    const warnings = seen.filter((w) => (w as { code?: string }).code === "COORDIS_UNSAFE_CLIENT");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.message).toMatch(/commandTimeout 1000000 is above 600000 ms/);
    expect(refusal(() => assertSafeClient(redis)).message).toMatch(/commandTimeout 1000000 is above 600000 ms/);
  });
});
