import { type Algorithm, type NormalizedRule, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { mulberry32, testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { type Decision, decisionFromReply } from "../src/decision.js";
import { normalizeRules, rulesArgs, rulesSpec } from "../src/rules.js";
import { specialiseConsume } from "../src/specialised.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime } from "./fixtures/previous-release.js";

const prefix = testPrefix();
const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];

/** TIME's reply (seconds, microseconds) at instant `at` (ms), some microseconds past the millisecond. */
const timeOf = (at: number): [string, string] => [
  String(Math.floor(at / 1000)),
  String((at % 1000) * 1000 + ((at * 7) % 1000)),
];

/** The line of consume.lua that runs the fast path: replaced by nothing, the script decides by the general path. */
const FAST_LINE = "local reply = rules ~= false and rl_fast(KEYS[1], cost, now, t, rules, ri, r1, r2, r3, r4, r5, r6)";

const summary = (d: Decision) => ({
  allowed: d.allowed,
  rules: d.rules.map((r) => [r.name, r.allowed, r.remaining, r.resetMs, r.retryAfterMs]),
});

/**
 * Redis deletes a key only once its PXAT millisecond has passed, so during that millisecond a call still reads it:
 * an entry whose expAtMs is now. After a rule change (a longer window, a slower refill) that entry's state would still
 * count under the new rules, but it has expired: the README says such a state is gone, and the general path
 * (rl_load) drops it. The one-rule fast path read it as current (a fixed window kept the old count for the whole new
 * window), deciding and writing other than the general path.
 */
describe("an entry read at its expiry millisecond is gone, on every path", () => {
  const clients = sharedClients();
  const key = (name: string) => `${prefix}:rl:{${name}}`;
  const load = async (source: string) => (await clients.admin.script("LOAD", atTime(source))) as string;
  /** An instant well ahead of the server's clock: keys written with it (PXAT) do not expire during the test. */
  const future = async () => {
    const [s] = (await clients.admin.time()) as unknown as [string, string];
    return Number(s) * 1000 + 100 * 24 * 3_600_000;
  };

  it.each(ALGS)("%s: a named rule changed, the next call at the old entry's expiry millisecond", async (algorithm) => {
    const consume = await load(ratelimitScripts.consume.source);
    const bucket = algorithm === "token-bucket" || algorithm === "gcra";
    const before = normalizeRules([{ name: "r", limit: 5, windowMs: 300, algorithm }]);
    const after = normalizeRules([
      { name: "r", limit: 5, windowMs: algorithm === "sliding-window" ? 600 : 60_000, algorithm },
    ]);
    const run = async (k: string, rules: readonly NormalizedRule[], cost: number, at: number) =>
      decisionFromReply(
        (await clients.admin.evalsha(consume, 1, k, cost, ...rulesArgs(rules), ...timeOf(at))) as never,
        rules,
      );
    const own = await load((specialiseConsume(rulesArgs(after)) as { source: string }).source);
    const [fast, ownKey, shared, fresh] = ["fast", "own", "shared", "fresh"].map((n) =>
      key(`exp-${algorithm}-${n}`),
    ) as [string, string, string, string];
    await clients.admin.del(fast, ownKey, shared, fresh);
    // sliding windows are aligned to the epoch: start in one that is aligned to the new window too
    const t0 = Math.ceil((await future()) / 600) * 600;
    // another limiter's entry, alive all along: the general path decides on that key
    await clients.admin.evalsha(consume, 1, shared, 1, "other|fw", 5, 3_600_000, ...timeOf(t0));
    for (const k of [fast, ownKey, shared]) expect((await run(k, before, 2, t0 + 10)).allowed).toBe(true);
    const value = (await clients.admin.get(fast)) as string;
    const expAt = Number(value.slice(value.indexOf("=") + 1).split(":")[0]);
    expect(expAt).toBe(bucket ? t0 + 10 + 120 : algorithm === "sliding-window" ? t0 + 600 : t0 + 310);
    // at expAt the entry has expired: the call finds the rule full, as on a key that never held it
    const expected = await run(fresh, after, 1, expAt);
    expect(expected.remaining).toBe(4);
    const got = {
      fast: await run(fast, after, 1, expAt),
      own: decisionFromReply((await clients.admin.evalsha(own, 1, ownKey, 1, ...timeOf(expAt))) as never, after),
      general: await run(shared, after, 1, expAt),
    };
    for (const [path, d] of Object.entries(got)) expect(summary(d), path).toEqual(summary(expected));
    const freshValue = await clients.admin.get(fresh);
    expect(await clients.admin.get(fast)).toBe(freshValue);
    expect(await clients.admin.get(ownKey)).toBe(freshValue);
    expect((await clients.admin.get(shared))?.split(";")).toContain(freshValue);
    expect(await clients.admin.pexpiretime(fast)).toBe(await clients.admin.pexpiretime(fresh));
    await clients.admin.del(fast, ownKey, shared, fresh);
  });

  /**
   * Random rule sets (changed on the same names now and then), costs, refunds, another limiter's entries and instants
   * (often exactly an entry's expAtMs or the millisecond before, now and then a step back of the clock): consume, a
   * limiter's own copy of it, consume-batch and consume with its fast path cut out decide and write the same, and peek
   * agrees with consume.
   */
  it("random sequences: the fast paths against the general path, at entries' expiry instants", async () => {
    const fastSha = await load(ratelimitScripts.consume.source);
    expect(ratelimitScripts.consume.source.split(FAST_LINE)).toHaveLength(2);
    const generalSha = await load(ratelimitScripts.consume.source.replace(FAST_LINE, "local reply = nil"));
    const batchSha = await load(ratelimitScripts.consumeBatch.source);
    const peekSha = await load(ratelimitScripts.peek.source);
    const refundSha = await load(ratelimitScripts.refund.source);
    const owns = new Map<string, string>();
    const next = mulberry32(20261207);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(next() * a.length)] as T;
    const WINDOWS = [1, 2, 3, 7, 10, 1_000, 3_000, 60_000];
    const randomRules = (names: string[]): NormalizedRule[] =>
      normalizeRules(
        names.slice(0, 1 + Math.floor(next() * 3)).map((name): Rule => {
          const algorithm = pick(ALGS);
          const bucket = algorithm === "token-bucket" || algorithm === "gcra";
          const burst = bucket && next() < 0.3 ? 1 + Math.floor(next() * 8) : undefined;
          const rule = { name, algorithm, limit: 1 + Math.floor(next() * 6), windowMs: pick(WINDOWS) };
          return burst === undefined ? rule : { ...rule, burst };
        }),
      );
    const base = await future();
    let atExpiry = 0;
    for (let seq = 0; seq < 60; seq++) {
      const keys = ["fast", "general", "own", "batch"].map((n) => key(`exp-rand-${seq}-${n}`));
      const [fastKey, generalKey, ownKey, batchKey] = keys as [string, string, string, string];
      await clients.admin.del(...keys);
      const names = ["a", "b", "c"];
      let rules = randomRules(names);
      let at = base + Math.floor(next() * 1e6);
      for (let step = 0; step < 24; step++) {
        if (next() < 0.15) rules = randomRules(names.sort(() => next() - 0.5));
        const value = await clients.admin.get(fastKey);
        const exps = (value ?? "").split(";").map((e) => Number(e.split("=")[1]?.split(":")[0]));
        const r = next();
        if (r < 0.25 && value !== null) {
          at = pick(exps);
          atExpiry++;
        } else if (r < 0.3 && value !== null) at = pick(exps) - 1;
        else if (r < 0.35)
          at -= 1 + Math.floor(next() * 3); // Redis' clock steps back
        else at += pick([0, 1, 1, 2, 3, 5, 999, 1_000, 1_001, 2_999, 60_000]);
        const minCap = Math.min(...rules.map((x) => x.capacity));
        const cost = 1 + Math.floor(next() * Math.min(3, minCap));
        const args = rulesArgs(rules);
        let ownSha = owns.get(args.join(" "));
        if (ownSha === undefined) {
          ownSha = await load((specialiseConsume(args) as { source: string }).source);
          owns.set(args.join(" "), ownSha);
        }
        const ctx = `seq ${seq} step ${step} at ${at} cost ${cost} rules ${args.join(",")} stored ${value}`;
        if (next() < 0.1 && cost <= minCap) {
          for (const k of keys) await clients.admin.evalsha(refundSha, 1, k, cost, rulesSpec(rules), ...timeOf(at));
        }
        if (next() < 0.05) {
          const w = pick(WINDOWS);
          for (const k of keys) await clients.admin.evalsha(fastSha, 1, k, 1, "zz|fw", 3, w, ...timeOf(at));
        }
        const peeked = (await clients.admin.evalsha(
          peekSha,
          1,
          fastKey,
          cost,
          rulesSpec(rules),
          ...timeOf(at),
        )) as never;
        const replies = [
          await clients.admin.evalsha(fastSha, 1, fastKey, cost, ...args, ...timeOf(at)),
          await clients.admin.evalsha(generalSha, 1, generalKey, cost, ...args, ...timeOf(at)),
          await clients.admin.evalsha(ownSha, 1, ownKey, cost, ...timeOf(at)),
          ((await clients.admin.evalsha(batchSha, 1, batchKey, cost, ...args, ...timeOf(at))) as unknown[])[0],
        ];
        const [fast, ...others] = replies.map((x) => summary(decisionFromReply(x as never, rules)));
        for (const d of others) expect(d, ctx).toEqual(fast);
        const p = summary(decisionFromReply(peeked, rules));
        expect(p.allowed, `${ctx}: peek`).toBe(fast?.allowed);
        if (!p.allowed) expect(p, `${ctx}: peek`).toEqual(fast);
        const stored = await Promise.all(keys.map((k) => clients.admin.get(k)));
        const expiries = await Promise.all(keys.map((k) => clients.admin.pexpiretime(k)));
        for (let i = 1; i < keys.length; i++) {
          expect(stored[i], `${ctx}: value of ${keys[i]}`).toBe(stored[0]);
          expect(expiries[i], `${ctx}: expiry of ${keys[i]}`).toBe(expiries[0]);
        }
      }
      await clients.admin.del(...keys);
    }
    expect(atExpiry).toBeGreaterThan(100);
  });
});
