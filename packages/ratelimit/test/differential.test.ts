import { type Algorithm, type NormalizedRule, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { mulberry32, testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { type Decision, decisionFromReply } from "../src/decision.js";
import { normalizeRules, rulesArgs } from "../src/rules.js";
import { specialiseConsume } from "../src/specialised.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime, previousArgs } from "./fixtures/previous-release.js";
import { previousScripts } from "./fixtures/previous-scripts.js";

const prefix = testPrefix();
const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];

/** TIME's reply (seconds, microseconds) at instant `at` (ms), with some microseconds past the millisecond. */
const timeOf = (at: number): [string, string] => [
  String(Math.floor(at / 1000)),
  String((at % 1000) * 1000 + ((at * 7) % 1000)),
];

/** A seeded PRNG: the same sequence on every run. */
const random = mulberry32;

/**
 * The previous release's script with the one change of semantics made since: a stored entry whose expAtMs has passed
 * is gone, also while another entry keeps the key alive (it used to be read as current after a rule change, see
 * rule-changes.test.ts). Both of its readers get the same line as this release's: the general path's rl_load and the
 * fast path's entry parse.
 */
function withExpiredEntriesGone(source: string): string {
  const load = "    r.exp, r.raw = tonumber(e) or 0, raw\n";
  const fast = "        if e > was then was = e end\n";
  expect(source.split(load)).toHaveLength(2);
  expect(source.split(fast)).toHaveLength(2);
  return source
    .replace(load, `${load}    if r.exp <= now then a, b, c = nil, nil, nil end\n`)
    .replace(fast, `${fast}        if e <= now then e, a, b, c = nil, nil, nil, nil end\n`);
}

/** The parts of a Decision both releases must agree on. */
const summary = (d: Decision) => ({
  allowed: d.allowed,
  rules: d.rules.map((r) => [r.name, r.allowed, r.remaining, r.resetMs, r.retryAfterMs]),
});

/**
 * Random rule sets (one to five rules, every algorithm, small limits so that calls get rejected, rule changes on the
 * same names), costs and instants: this release's consume and consume-batch against the previous release's consume on
 * twin keys, at the same server instant: the same decisions, the same stored bytes, the same key expiry.
 */
describe("consume decides and writes exactly as the previous release", () => {
  const clients = sharedClients();
  const key = (name: string) => `${prefix}:rl:{${name}}`;

  /** An instant well ahead of the server's clock: keys written with it (PXAT) do not expire during the test. */
  const future = async () => {
    const [s] = (await clients.admin.time()) as unknown as [string, string];
    return Number(s) * 1000 + 100 * 24 * 3_600_000;
  };
  const load = async (source: string) => (await clients.admin.script("LOAD", atTime(source))) as string;
  const run = async (sha: string, keys: string[], args: (string | number)[], at: number) =>
    clients.admin.evalsha(sha, keys.length, ...keys, ...args.map(String), ...timeOf(at));

  const randomRules = (next: () => number, names: string[]): Rule[] => {
    const n = Math.min(names.length, 1 + Math.floor(next() * 5));
    return names.slice(0, n).map((name) => {
      const algorithm = ALGS[Math.floor(next() * ALGS.length)] as Algorithm;
      const limit = 1 + Math.floor(next() * 8);
      const windowMs = [1_000, 3_000, 60_000, 7 * 3_600_000][Math.floor(next() * 4)] as number;
      const bucket = algorithm === "token-bucket" || algorithm === "gcra";
      const burst = bucket && next() < 0.3 ? 1 + Math.floor(next() * 10) : undefined;
      return { name, algorithm, limit, windowMs, ...(burst === undefined ? {} : { burst }) };
    });
  };

  it("random rule sets, costs and instants: consume, and a limiter's own copy of it (its rules as constants)", async () => {
    const previous = await load(withExpiredEntriesGone(previousScripts.consume.source));
    const consume = await load(ratelimitScripts.consume.source);
    /** The script with a rule set's constants, loaded once per rule set. */
    const own = new Map<string, string>();
    const ownSha = async (rules: readonly NormalizedRule[]) => {
      const args = rulesArgs(rules);
      const id = args.join(" ");
      let sha = own.get(id);
      if (sha === undefined) {
        const script = specialiseConsume(args);
        expect(script, id).toBeDefined();
        sha = await load((script as { source: string }).source);
        own.set(id, sha);
      }
      return sha;
    };
    const next = random(20261203);
    const base = await future();
    let strings = 0;
    for (let seq = 0; seq < 120; seq++) {
      const oldKey = key(`diff-${process.pid}-${seq}-old`);
      const newKey = key(`diff-${process.pid}-${seq}-new`);
      const ownKey = key(`diff-${process.pid}-${seq}-own`);
      await clients.admin.del(oldKey, newKey, ownKey);
      // names in a shuffled order: a later rule set may list the same rules in another order
      const names = ["a", "b", "c", "d", "e"].sort(() => next() - 0.5);
      let rules = normalizeRules(randomRules(next, names));
      let at = base + Math.floor(next() * 1e9);
      for (let step = 0; step < 14; step++) {
        if (next() < 0.12)
          rules = normalizeRules(
            randomRules(
              next,
              names.sort(() => next() - 0.5),
            ),
          );
        at += [0, 1, 37, 400, 999, 1_000, 2_500, 61_000, 3_600_000][Math.floor(next() * 9)] as number;
        const minCap = Math.min(...rules.map((r) => r.capacity));
        const cost = 1 + Math.floor(next() * Math.min(3, minCap));
        const at0 = `seq ${seq} step ${step} at ${at} cost ${cost} rules ${JSON.stringify(rules)}`;
        const oldReply = (await run(previous, [oldKey], [cost, ...previousArgs(rules)], at)) as number[];
        const newReply = (await run(consume, [newKey], [cost, ...rulesArgs(rules)], at)) as number | number[] | string;
        const ownReply = await run(await ownSha(rules), [ownKey], [cost], at);
        if (typeof newReply === "string") strings++;
        expect(summary(decisionFromReply(newReply, rules)), at0).toEqual(summary(decisionFromReply(oldReply, rules)));
        expect(ownReply, at0).toEqual(newReply);
        const [oldValue, newValue, ownValue] = await Promise.all([
          clients.admin.get(oldKey),
          clients.admin.get(newKey),
          clients.admin.get(ownKey),
        ]);
        expect(newValue, at0).toBe(oldValue);
        expect(ownValue, at0).toBe(oldValue);
        const [oldExp, newExp, ownExp] = await Promise.all([
          clients.admin.pexpiretime(oldKey),
          clients.admin.pexpiretime(newKey),
          clients.admin.pexpiretime(ownKey),
        ]);
        expect(newExp, at0).toBe(oldExp);
        expect(ownExp, at0).toBe(oldExp);
      }
    }
    // the several-rule admissions took the string reply (and were compared above)
    expect(strings).toBeGreaterThan(100);
  });

  it("random rule sets, costs and instants: consume-batch against consume called one after another", async () => {
    const previous = await load(withExpiredEntriesGone(previousScripts.consume.source));
    const batch = await load(ratelimitScripts.consumeBatch.source);
    const next = random(4242);
    const base = await future();
    for (let seq = 0; seq < 60; seq++) {
      const names = ["a", "b", "c"].sort(() => next() - 0.5);
      const rules = normalizeRules(randomRules(next, names));
      const twins = [0, 1, 2].map((j) => [
        key(`diffb-${process.pid}-${seq}-${j}-old`),
        key(`diffb-${process.pid}-${seq}-${j}-new`),
      ]);
      await clients.admin.del(...twins.flat());
      let at = base + Math.floor(next() * 1e9);
      for (let step = 0; step < 8; step++) {
        at += [0, 1, 999, 2_500, 61_000][Math.floor(next() * 5)] as number;
        const minCap = Math.min(...rules.map((r) => r.capacity));
        // a batch of one to five calls on the three keys (a key may repeat)
        const calls = Array.from({ length: 1 + Math.floor(next() * 5) }, () => ({
          twin: twins[Math.floor(next() * 3)] as string[],
          cost: 1 + Math.floor(next() * Math.min(2, minCap)),
        }));
        const at0 = `seq ${seq} step ${step} at ${at} rules ${JSON.stringify(rules)}`;
        const newReplies = (await run(
          batch,
          calls.map((c) => c.twin[1] as string),
          [...calls.map((c) => c.cost), ...rulesArgs(rules)],
          at,
        )) as (number | number[] | string)[];
        for (const [j, c] of calls.entries()) {
          const oldReply = (await run(
            previous,
            [c.twin[0] as string],
            [c.cost, ...previousArgs(rules)],
            at,
          )) as number[];
          const got = summary(decisionFromReply(newReplies[j] as number | number[] | string, rules));
          expect(got, `${at0} call ${j}`).toEqual(summary(decisionFromReply(oldReply, rules)));
        }
        for (const [oldKey, newKey] of twins as [string, string][]) {
          expect(await clients.admin.get(newKey), at0).toBe(await clients.admin.get(oldKey));
          expect(await clients.admin.pexpiretime(newKey), at0).toBe(await clients.admin.pexpiretime(oldKey));
        }
      }
    }
  });

  it("several rules admitted: the reply is the server time and the value written, one string", async () => {
    const consume = await load(ratelimitScripts.consume.source);
    const rules = normalizeRules([
      { name: "second", limit: 10, windowMs: 1_000 },
      { name: "minute", limit: 100, windowMs: 60_000, algorithm: "sliding-window" },
      { name: "hour", limit: 1_000, windowMs: 3_600_000, algorithm: "token-bucket" },
    ]);
    const k = key(`diff-shape-${process.pid}`);
    await clients.admin.del(k);
    const at = await future();
    const reply = await run(consume, [k], [2, ...rulesArgs(rules)], at);
    expect(reply).toBe(`${timeOf(at).join(":")};${await clients.admin.get(k)}`);
    expect(summary(decisionFromReply(reply as string, rules))).toEqual({
      allowed: true,
      rules: [
        ["second", true, 8, 1_000, 0],
        ["minute", true, 98, 2 * 60_000 - (at % 60_000), 0],
        ["hour", true, 998, 7_200, 0],
      ],
    });
  });
});
