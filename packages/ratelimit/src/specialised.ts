import { createHash } from "node:crypto";
import { defineScript, type ScriptDef } from "@coordis/core";
import type { ScriptReply } from "./decision.js";
import { ratelimitScripts } from "./scripts.generated.js";

/** The consume script of one rule set, its rules written into the source: ARGV is the cost alone. */
export type SpecialisedConsume = ScriptDef<["state"], ["cost"], ScriptReply>;

/** The line of lua/ratelimit/consume.lua that reads the rules from ARGV, replaced in a specialised copy. */
const RULES_LINE =
  "local rules, ri, r1, r2, r3, r4, r5, r6 = ARGV, 2, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[4], nil --@rules";
/**
 * At most this many rule sets get a script of their own per process (each is a copy of the consume script, about
 * 30 kB, that Redis keeps in its script cache); further rule sets use the shared script with the rules in ARGV.
 */
export const MAX_SPECIALISED_RULE_SETS = 64;

const made = new Map<string, SpecialisedConsume>();

/** A rule field or number of {@link rulesArgs} as a Lua constant: the tick count of a bucket rule stays text. */
function literal(arg: string, asText: boolean): string | undefined {
  if (asText || !/^-?\d{1,15}$/.test(arg)) return /^[A-Za-z0-9_.|-]{1,80}$/.test(arg) ? `'${arg}'` : undefined;
  return arg;
}

/**
 * The consume script for one rule set with its rules as constants (`ruleArgs` as {@link rulesArgs} makes them):
 * the same decisions and stored bytes as the shared script called with those ARGV (the Lua reads the same values
 * from a table instead of ARGV; fixed and sliding windows' numbers as numbers, a token bucket's ticks per unit as
 * the text it is compared and written as), for less Redis CPU per call: Redis no longer receives and converts each
 * rule's arguments. One per distinct rule set, shared by the limiters of the process; `undefined` past
 * {@link MAX_SPECIALISED_RULE_SETS} rule sets (those limiters send their rules in ARGV).
 */
export function specialisedConsume(ruleArgs: readonly string[]): SpecialisedConsume | undefined {
  const id = ruleArgs.join("\n");
  const known = made.get(id);
  if (known !== undefined) return known;
  if (made.size >= MAX_SPECIALISED_RULE_SETS) return undefined;
  const script = specialiseConsume(ruleArgs);
  if (script !== undefined) made.set(id, script);
  return script;
}

/**
 * Builds the script of {@link specialisedConsume} (not shared, no limit on how many); `undefined` for arguments
 * that are not as {@link rulesArgs} makes them.
 */
export function specialiseConsume(ruleArgs: readonly string[]): SpecialisedConsume | undefined {
  if (ruleArgs.length === 0) return undefined;
  const items: string[] = [];
  let single: string | undefined; // one rule: its values as the locals r1 to r6 (r3 a number, r5 its text)
  for (let i = 0; i < ruleArgs.length; ) {
    const bucket = (ruleArgs[i + 1] ?? "").startsWith("-"); // token bucket and GCRA send -limit
    const width = bucket ? 4 : 3;
    for (let j = 0; j < width; j++) {
      const item = literal(ruleArgs[i + j] ?? "", j === 0 || (bucket && j === 2));
      if (item === undefined) return undefined;
      items.push(item);
    }
    if (i === 0 && width === ruleArgs.length) {
      const w = literal(ruleArgs[2] ?? "", false);
      if (w === undefined) return undefined;
      const [field, limit, wText, cap] = items;
      // a bucket's level once full less one unit, and its ticks per unit, as the entry's text ends (Lua's '%d')
      const level = (Number(ruleArgs[3]) - 1) * Number(ruleArgs[2]);
      const full = bucket && Number.isSafeInteger(level) && level >= 0 ? `'${level}:${ruleArgs[2]}'` : "nil";
      single = `${field}, ${limit}, ${w}, ${bucket ? cap : "nil"}, ${wText}, ${full}`;
    }
    i += width;
  }
  const generic = ratelimitScripts.consume;
  const parts = generic.source.split(RULES_LINE);
  if (parts.length !== 2) throw new Error(`ratelimit/consume: expected one "${RULES_LINE}" line in the script`);
  const rules =
    single === undefined
      ? `local rules, ri = { ${items.join(", ")} }, 1 local r1, r2, r3, r4, r5, r6 = rules[1], rules[2], rules[3], rules[4], rules[3], nil`
      : `local rules, ri, r1, r2, r3, r4, r5, r6 = nil, 1, ${single}`;
  const source = parts.join(`${rules} --@rules`);
  return defineScript<["state"], ["cost"], ScriptReply>({
    name: generic.name,
    keys: ["state"],
    args: ["cost"],
    source,
    sha1: createHash("sha1").update(source).digest("hex"),
  });
}
