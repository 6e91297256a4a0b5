import {
  type CoordisEvent,
  connect,
  type RedisClient,
  RedisUnavailableError,
  runScriptSource,
  undoUntilAnswered,
} from "@coordis/core";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MAX_PENDING_UNDOS, undoQueueState } from "../src/undo.js";
import { uniqueScript } from "./fixtures/test-scripts.js";

const prefix = testPrefix("undo-queue");

/** A compare-and-delete of a token, as the locks' and the concurrency limiter's undos are. */
const compareAndDelete = uniqueScript<readonly ["key"], readonly ["token"], number>(
  "undo-queue",
  ["key"],
  ["token"],
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
);

/** A script Redis refuses to run through (an error reply): an answer, not an outage. */
const refusing = uniqueScript("undo-queue-refused", [], [], "return redis.error_reply('ERR refused by the test')");

/** One undo of a grant stored at `key`, counting how often it is sent and how many of its sends are unanswered. */
interface TrackedUndo {
  readonly key: string;
  readonly undo: () => Promise<unknown>;
  calls: number;
  outstanding: number;
}

function trackedUndo(redis: RedisClient, key: string): TrackedUndo {
  const t: TrackedUndo = {
    key,
    calls: 0,
    outstanding: 0,
    undo: () => {
      t.calls++;
      t.outstanding++;
      const sent = runScriptSource(redis, compareAndDelete, [key], [`token-${key}`]);
      const settled = () => {
        t.outstanding--;
      };
      sent.then(settled, settled);
      return sent;
    },
  };
  return t;
}

const sum = (undos: readonly TrackedUndo[], f: (u: TrackedUndo) => number) => undos.reduce((n, u) => n + f(u), 0);

/** A first attempt that met the outage already (the caller's own, failed without an answer). */
const unanswered = () => Promise.reject(new RedisUnavailableError("no answer (test)"));

// The undo of a grant, claim or permit whose command went unanswered is sent again until Redis answers it. Each such
// undo used to retry on its own timer: during a long outage of a busy service every failed operation added a chain
// sending a command about once a second (tens of thousands of them), all of which reached Redis at once on its return,
// most of them copies of each other. The undos of one client now wait in one bounded queue, one attempt at a time.
describe("undos sent again until Redis answers: one queue per client", () => {
  let server: RedisServer;
  let admin: RedisClient;
  const clients: RedisClient[] = [];
  const client = (): RedisClient => {
    const c = connect(server.url, { commandTimeoutMs: 200 });
    c.on("error", () => {});
    clients.push(c);
    return c;
  };
  /** Grants to undo: `keys` set to their tokens for a minute. */
  async function grant(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1_000) {
      const pipeline = admin.pipeline();
      for (const key of keys.slice(i, i + 1_000)) pipeline.set(key, `token-${key}`, "PX", 60_000);
      await pipeline.exec();
    }
  }
  const keysOf = (name: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}:${name}:{${i}}`);

  beforeAll(async () => {
    // A server of this file's own: it is paused.
    server = await startRedis();
    admin = server.adminClient();
    await admin.ping();
  });
  afterEach(() => {
    if (server.paused) server.resume();
    for (const c of clients.splice(0)) c.disconnect();
  });
  afterAll(async () => {
    admin.disconnect();
    await server.stop();
  });

  it("many undos failed in one outage: one attempt at a time while it lasts, each sent once more when it ends", async () => {
    const n = 200;
    const rounds = 5;
    const redis = client();
    // Another client's single undo is the outage's clock: Redis is paused until it has been sent `rounds` times.
    const other = client();
    await Promise.all([redis.ping(), other.ping()]);
    const keys = keysOf("many", n);
    await grant([...keys, `${prefix}:clock`]);
    const undos = keys.map((key) => trackedUndo(redis, key));
    const clock = trackedUndo(other, `${prefix}:clock`);
    let resentDuringOutage = 0;
    const counted = await countCommands(server, async () => {
      server.pause();
      try {
        for (const u of undos) undoUntilAnswered(redis, u.undo, 60_000);
        undoUntilAnswered(other, clock.undo, 60_000);
        await waitUntil(`one undo to be sent ${rounds} times`, () => clock.calls >= rounds, 20_000);
        resentDuringOutage = sum(undos, (u) => u.calls) - n;
      } finally {
        server.resume();
      }
      await waitUntil("every undo to be applied", async () => (await admin.exists(...keys)) === 0, 20_000);
      await waitUntil("every attempt to be answered", () => sum([...undos, clock], (u) => u.outstanding) === 0, 20_000);
    });
    // While Redis did not answer, the n undos were sent again as one at a time: about once per round, not n times.
    expect(resentDuringOutage).toBeLessThanOrEqual(2 * rounds);
    // On its return each was sent once more at most (the first attempts may have been lost), no copies beyond that.
    expect(sum(undos, (u) => u.calls)).toBeLessThanOrEqual(2 * n + 2 * rounds);
    expect(Math.max(...undos.map((u) => u.calls))).toBeLessThanOrEqual(3);
    // What reached Redis when it came back (both clients' undos).
    expect(counted.sent.eval ?? 0).toBeLessThanOrEqual(2 * n + 4 * rounds);
    await waitUntil("nothing left waiting", () => undoQueueState(redis) === undefined, 5_000);
  });

  it(`keeps at most ${MAX_PENDING_UNDOS} undos per client: the oldest are dropped, reported once per outage`, async () => {
    const redis = client();
    await redis.ping();
    const beyond = 3;
    const keys = keysOf("cap", MAX_PENDING_UNDOS + beyond + 2);
    await grant(keys);
    const events: CoordisEvent[] = [];
    const report = { observer: { onEvent: (e: CoordisEvent) => events.push(e) }, site: { primitive: "test", op: "x" } };
    const undoOf = (key: string) => () => runScriptSource(redis, compareAndDelete, [key], [`token-${key}`]);
    server.pause();
    try {
      for (const key of keys.slice(0, MAX_PENDING_UNDOS + beyond)) {
        undoUntilAnswered(redis, undoOf(key), 60_000, unanswered(), report);
      }
      await waitUntil("the dropped undos to be reported", () => events.length > 0, 5_000);
      expect(undoQueueState(redis)?.pending).toBe(MAX_PENDING_UNDOS);
      // More dropped in the same outage: not reported again.
      for (const key of keys.slice(MAX_PENDING_UNDOS + beyond)) {
        undoUntilAnswered(redis, undoOf(key), 60_000, unanswered(), report);
      }
      await waitUntil("the last undos to wait too", () => undoQueueState(redis)?.pending === MAX_PENDING_UNDOS, 5_000);
    } finally {
      server.resume();
    }
    const kept = keys.slice(beyond + 2);
    await waitUntil("every kept undo to be applied", async () => (await admin.exists(...kept)) === 0, 30_000);
    // The dropped ones were never sent: their grants expire at their TTL, as they would without any undo.
    expect(await admin.exists(...keys.slice(0, beyond + 2))).toBe(beyond + 2);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ primitive: "test", type: "undo-dropped" });
    expect(events[0]?.error).toBeInstanceOf(RedisUnavailableError);
    await waitUntil("nothing left waiting", () => undoQueueState(redis) === undefined, 5_000);
  });

  it("an undo whose time has passed is dropped without being sent", async () => {
    const redis = client();
    await redis.ping();
    const [shortKey, longKey] = keysOf("expired", 2) as [string, string];
    await grant([shortKey, longKey]);
    const short = trackedUndo(redis, shortKey);
    const long = trackedUndo(redis, longKey);
    server.pause();
    try {
      // What `short` undoes lives 20 ms, less than the first pause before a new attempt.
      undoUntilAnswered(redis, short.undo, 20, unanswered());
      undoUntilAnswered(redis, long.undo, 60_000, unanswered());
      await waitUntil("the other undo to be sent twice", () => long.calls >= 2, 5_000);
    } finally {
      server.resume();
    }
    await waitUntil("the other undo to be applied", async () => (await admin.exists(longKey)) === 0, 10_000);
    expect(short.calls).toBe(0);
    expect(await admin.exists(shortKey)).toBe(1);
  });

  it("a client closed during the outage: everything waiting is dropped, no timer left", async () => {
    const redis = client();
    await redis.ping();
    const keys = keysOf("closed", 20);
    await grant(keys);
    const undos = keys.map((key) => trackedUndo(redis, key));
    server.pause();
    for (const u of undos) undoUntilAnswered(redis, u.undo, 60_000);
    await waitUntil("the undos to wait for Redis", () => undoQueueState(redis)?.pending === keys.length, 5_000);
    redis.disconnect();
    await waitUntil("the queue to be dropped", () => undoQueueState(redis) === undefined, 5_000);
    const sent = sum(undos, (u) => u.calls);
    server.resume();
    // Nothing more is sent: a new client's command is answered after anything the closed one could have written.
    const fresh = client();
    expect(await fresh.ping()).toBe("PONG");
    expect(sum(undos, (u) => u.calls)).toBe(sent);
    expect(undoQueueState(redis)).toBeUndefined();
  });

  it("a refused attempt counts as an answer: the undos waiting are sent once, then dropped", async () => {
    const redis = client();
    await redis.ping();
    const keys = keysOf("refused", 5);
    await grant(keys);
    const undos = keys.map((key) => trackedUndo(redis, key));
    let refusals = 0;
    const refused = () => {
      refusals++;
      return runScriptSource(redis, refusing, [], []);
    };
    server.pause();
    try {
      undoUntilAnswered(redis, refused, 60_000, unanswered());
      for (const u of undos) undoUntilAnswered(redis, u.undo, 60_000, unanswered());
      await waitUntil("a first attempt to be sent", () => refusals >= 1, 5_000);
    } finally {
      server.resume();
    }
    await waitUntil("every undo to be applied", async () => (await admin.exists(...keys)) === 0, 10_000);
    await waitUntil("nothing left waiting", () => undoQueueState(redis) === undefined, 5_000);
    expect(refusals).toBeLessThanOrEqual(2);
    expect(Math.max(...undos.map((u) => u.calls))).toBeLessThanOrEqual(2);
  });
});
