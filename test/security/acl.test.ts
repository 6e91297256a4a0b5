/**
 * Least privilege: Coordis works as an ACL user limited to the `coordis:*` key and channel patterns and the commands
 * it needs (the exact line documented in the README's "Least privilege (ACL)" section), and that user is refused
 * everything outside its prefix. Commands a Lua script runs are checked against the caller's ACL too, so the rule
 * set lists them (GET, ZADD, XADD, TIME...); the tour below exercises every primitive to prove none is missing.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  type CoordisError,
  connect,
  aclRules as coreAclRules,
  coreScripts,
  type RedisClient,
  runScript,
  ScriptError,
} from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { Leaderboard } from "@coordis/leaderboard";
import { Mutex, Redlock, runOncePerTick, Semaphore } from "@coordis/lock";
import { PubSub } from "@coordis/pubsub";
import { ConcurrencyLimiter, RateLimiter } from "@coordis/ratelimit";
import {
  type RedisGroup,
  type RedisServer,
  startRedis,
  startRedisGroup,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { primitiveTour } from "./fixtures/primitive-tour.js";

/**
 * The ACL line documented in the README's "Least privilege (ACL)" section, read from there so the documentation is
 * exactly what this test runs: `user coordis on >CHANGE-ME <rules>`.
 */
function readmeAclRules(): string[] {
  const readme = readFileSync(fileURLToPath(new URL("../../README.md", import.meta.url)), "utf8");
  const section = readme.split(/^## /m).find((s) => s.startsWith("Least privilege (ACL)"));
  if (section === undefined) throw new Error('README.md has no "## Least privilege (ACL)" section');
  const lines = section.split("\n").filter((l) => l.startsWith("user coordis on >CHANGE-ME "));
  if (lines.length !== 1) throw new Error("the README's ACL section must hold exactly one `user coordis ...` line");
  return (lines[0] as string).trim().split(/\s+/).slice(4);
}

const README_RULES = readmeAclRules();

/** The documented rules for `prefix`: both `coordis:*` patterns replaced (how the README says to adapt them). */
function aclRules(prefix = "coordis"): string[] {
  return README_RULES.map((r) => (r === "~coordis:*" || r === "&coordis:*" ? `${r[0]}${prefix}:*` : r));
}

const PASSWORD = "s3cret-coordis";
let server: RedisServer;
let group: RedisGroup;
let admin: RedisClient;
const clients: RedisClient[] = [];

function userClient(url: string, user = "coordis"): RedisClient {
  const client = connect(url.replace("redis://", `redis://${user}:${PASSWORD}@`), { commandTimeoutMs: 5_000 });
  clients.push(client);
  return client;
}

async function setUser(target: RedisClient, user: string, rules: string[]): Promise<void> {
  await target.call("ACL", "SETUSER", user, "reset", "on", `>${PASSWORD}`, ...rules);
}

/** The commands (or keys/channels) the ACL log recorded as refused, deduplicated. */
async function refusals(): Promise<string[]> {
  const log = (await admin.call("ACL", "LOG")) as unknown[][];
  const objects = log.map((entry) => {
    const fields = new Map<string, unknown>();
    for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
    return `${fields.get("reason") === "command" ? "" : `${String(fields.get("reason"))}:`}${String(fields.get("object"))}`;
  });
  return [...new Set(objects)].sort();
}

/** Asserts that `p` rejects with a ScriptError whose Redis reply is a NOPERM refusal. */
async function expectNoPerm(p: Promise<unknown>): Promise<ScriptError> {
  const err = await p.then(
    () => {
      throw new Error("expected a NOPERM refusal, but the call succeeded");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ScriptError);
  expect((err as CoordisError).code).toBe("ERR_SCRIPT");
  expect((err as ScriptError).redisMessage).toMatch(/^NOPERM/);
  return err as ScriptError;
}

beforeAll(async () => {
  [server, group] = await Promise.all([startRedis(), startRedisGroup(3)]);
  admin = server.client();
  await setUser(admin, "coordis", aclRules());
  await Promise.all(group.servers.map((s) => setUser(s.client(), "coordis", aclRules())));
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all([server?.stop(), group?.stop()]);
});

describe("least privilege (ACL user limited to coordis:*)", () => {
  it("the documented rules are least privilege: only coordis:* keys and channels, no command category", () => {
    expect(README_RULES.slice(0, 5)).toEqual(["resetkeys", "~coordis:*", "resetchannels", "&coordis:*", "-@all"]);
    // The README line is exactly what @coordis/core's aclRules() returns (what the harness runs the suite with).
    expect(README_RULES).toEqual(coreAclRules());
    expect(aclRules("myapp")).toEqual(coreAclRules({ prefix: "myapp" }));
    const grants = README_RULES.slice(5);
    expect(grants.length).toBeGreaterThan(10);
    for (const g of grants) expect(g).toMatch(/^\+[a-z]+(\|[a-z]+)?$/); // single commands, no +@category
    for (const risky of ["+keys", "+scan", "+flushall", "+flushdb", "+config", "+script", "+client", "+acl"]) {
      expect(grants).not.toContain(risky);
    }
  });

  it("the ACL user is really restricted", async () => {
    const redis = userClient(server.url);
    expect(await redis.call("ACL", "WHOAMI").catch((e: Error) => e.message)).toMatch(/NOPERM/);
    const rules = (await admin.call("ACL", "GETUSER", "coordis")) as unknown[];
    const flat = rules.map(String);
    expect(flat[flat.indexOf("keys") + 1]).toBe("~coordis:*");
    expect(flat[flat.indexOf("channels") + 1]).toBe("&coordis:*");
    expect(flat[flat.indexOf("commands") + 1]).toMatch(/^-@all /);
  });

  it("every primitive works as the ACL user with the default prefix", async () => {
    const redis = userClient(server.url);
    const nodes = group.servers.map((s) => userClient(s.url));
    await admin.call("ACL", "LOG", "RESET");
    const steps = await primitiveTour(redis, { tag: "default", redlockNodes: nodes, patterns: false });
    expect(steps).toHaveLength(10);
    // Nothing was refused along the way (a refused command inside a retry loop would not fail the tour by itself),
    // except the Cache's optional start-up check of maxmemory-policy (CONFIG GET, deliberately not granted: the
    // Cache skips the check when it is refused).
    expect(await refusals()).toEqual(["config|get"]);
    // Keys were written under the prefix only.
    const keys = (await admin.keys("*")) as string[];
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(k.startsWith("coordis:")).toBe(true);
  });

  it("pattern subscriptions need the pattern itself in the ACL (Redis matches PSUBSCRIBE patterns literally)", async () => {
    const redis = userClient(server.url);
    const pubsub = new PubSub(redis);
    try {
      await expectNoPerm(pubsub.psubscribe("orders.*", () => {}));
      await setUser(admin, "coordis-patterns", [...aclRules(), "&coordis:ps:orders.*"]);
      const withPattern = new PubSub(userClient(server.url, "coordis-patterns"));
      try {
        const got: unknown[] = [];
        const off = await withPattern.psubscribe("orders.*", (m) => {
          got.push(m);
        });
        expect(await withPattern.publish("orders.created", { id: 1 })).toBe(1);
        await waitUntil("the pattern message", () => got.length > 0);
        expect(got).toEqual([{ id: 1 }]);
        await off();
      } finally {
        await withPattern.close();
      }
    } finally {
      await pubsub.close();
    }
  });

  it("a custom prefix: the same rules with the prefix substituted", async () => {
    const custom = testPrefix("myapp");
    await setUser(admin, "coordis-custom", aclRules(custom));
    const redis = userClient(server.url, "coordis-custom");
    const steps = await primitiveTour(redis, { tag: "custom", prefix: custom, patterns: false });
    expect(steps).toHaveLength(9);
    // ...and that user cannot touch the default prefix.
    await expectNoPerm(new Mutex(redis, "m").tryAcquire());
  });

  it("a client using another prefix is refused with ScriptError NOPERM, and nothing is written", async () => {
    const redis = userClient(server.url);
    const prefix = "other";
    const keysBefore = await admin.dbsize();
    await expectNoPerm(new Mutex(redis, "job", { prefix }).tryAcquire());
    await expectNoPerm(new Mutex(redis, "job", { prefix }).acquire({ waitMs: 100 }));
    await expectNoPerm(new Semaphore(redis, "sem", { prefix, permits: 2 }).tryAcquire());
    // Redlock too: a master's refusal is an answer, and refusals that leave no quorum are the error itself.
    await expectNoPerm(new Redlock([redis], "job", { prefix }).acquire({ waitMs: 0 }));
    await expectNoPerm(runOncePerTick(redis, "job", 1, () => 1, { prefix }));
    const limiter = new RateLimiter(redis, { prefix, rules: [{ limit: 5, windowMs: 1_000 }] });
    await expectNoPerm(limiter.consume("user-1"));
    await expectNoPerm(limiter.peek("user-1"));
    await expectNoPerm(limiter.reset("user-1"));
    // A failure policy never hides a permission error: it is a ScriptError, not an outage.
    const failOpen = new RateLimiter(redis, {
      prefix,
      rules: [{ limit: 5, windowMs: 1_000 }],
      onRedisError: "fail-open",
    });
    await expectNoPerm(failOpen.consume("user-1"));
    await expectNoPerm(new ConcurrencyLimiter(redis, { prefix, limit: 1, ttlMs: 1_000 }).acquire("k"));
    const board = new Leaderboard(redis, "board", { prefix });
    await expectNoPerm(board.submit("alice", 1));
    await expectNoPerm(board.top(10));
    const log = new EventLog(redis, "log", { prefix, chain: true });
    await expectNoPerm(log.append({ a: 1 }));
    await expectNoPerm(log.read());
    await expectNoPerm(log.verify());
    const pubsub = new PubSub(redis, { prefix });
    try {
      await expectNoPerm(pubsub.publish("news", "hi"));
      await expectNoPerm(pubsub.subscribe("news", () => {}));
    } finally {
      await pubsub.close();
    }
    expect(await admin.dbsize()).toBe(keysBefore);
  });

  it("keys outside the prefix and commands outside the set are refused", async () => {
    const redis = userClient(server.url);
    const replyOf = (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e: Error) => e.message,
      );
    // Direct commands on keys outside coordis:* (even ones the user may run on its own keys).
    expect(await replyOf(redis.get("foo"))).toMatch(/^NOPERM/);
    expect(await replyOf(redis.set("other:{x}", "1"))).toMatch(/^NOPERM/);
    expect(await replyOf(redis.publish("other:ps:x", "1"))).toMatch(/^NOPERM/);
    // A script given keys outside the prefix.
    await expectNoPerm(runScript(redis, coreScripts.probe, ["other:{p}", "other:{p}:n"], ["v", 1_000]));
    // ...while the same script inside the prefix works.
    const [value] = await runScript(
      redis,
      coreScripts.probe,
      ["coordis:probe:{p}", "coordis:probe:{p}:n"],
      ["v", 1_000],
    );
    expect(value).toBe("v");
    // Administrative and keyspace-wide commands are not granted.
    for (const command of [
      ["FLUSHALL"],
      ["KEYS", "*"],
      ["SCAN", "0"],
      ["CONFIG", "GET", "*"],
      ["SCRIPT", "FLUSH"],
      ["SCRIPT", "LOAD", "return 1"],
      ["CLIENT", "KILL", "TYPE", "normal"],
      ["ACL", "LIST"],
      ["SHUTDOWN", "NOSAVE"],
      ["MONITOR"],
    ]) {
      expect(await replyOf(redis.call(command[0] as string, ...command.slice(1)))).toMatch(/^NOPERM/);
    }
    // A raw EVAL may only run the granted commands, on keys under the prefix. Inside a script Redis words the refusal
    // differently ("ERR The user executing the script can't ..."), not with a NOPERM prefix.
    expect(await replyOf(redis.eval("return redis.call('FLUSHALL')", 1, "coordis:x"))).toMatch(
      /user executing the script can't run this command/,
    );
    expect(await replyOf(redis.eval("return redis.call('GET', 'foo')", 1, "coordis:x"))).toMatch(
      /user executing the script can't access at least one of the keys/,
    );
  });
});
