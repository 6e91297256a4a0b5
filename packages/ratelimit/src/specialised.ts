import { createHash } from "node:crypto";
import { defineScript, type ScriptDef } from "@coordis/core";
import type { ScriptReply } from "./decision.js";
import { ratelimitScripts } from "./scripts.generated.js";

/** The consume script of one rule set, its rules written into the source: ARGV is the cost alone (none: a cost of 1). */
export type SpecialisedConsume = ScriptDef<["state"], ["cost"], ScriptReply>;

/** The line of lua/ratelimit/consume.lua that reads the rules from ARGV, replaced in a specialised copy. */
const RULES_LINE =
  "local rules, ri, r1, r2, r3, r4, r5, r6 = ARGV, 2, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[4], nil --@rules";
/**
 * At most this many rule sets get a script of their own per process (each is a copy of the consume script, 33 to
 * 41 kB, that Redis keeps in its script cache); further rule sets use the shared script with the rules in ARGV.
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
 * rule's arguments, and one to four rules decide the usual call in straight-line code (lua/_lib/ratelimit-own.lua,
 * its block filled in for these rules) before rl_fast. One per distinct rule set, shared by the limiters of the
 * process; `undefined` past {@link MAX_SPECIALISED_RULE_SETS} rule sets (those limiters send their rules in ARGV).
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
  // the block of lua/_lib/ratelimit-own.lua as code for these rules, or left out (a comment the copy does not need)
  const own = single === undefined ? ownBlock(ruleArgs) : oneBlock(ruleArgs);
  const table = `rules = { ${items.join(", ")} } r1, r2, r3, r4, r5 = rules[1], rules[2], rules[3], rules[4], rules[3]`;
  // Several rules: their table is built only once the block has broken out (its usual call builds none).
  const rules =
    single !== undefined
      ? `local rules, ri, r1, r2, r3, r4, r5, r6 = nil, 1, ${single}`
      : own === undefined
        ? `local rules, ri = { ${items.join(", ")} }, 1 local r1, r2, r3, r4, r5, r6 = rules[1], rules[2], rules[3], rules[4], rules[3], nil`
        : "local rules, ri, r1, r2, r3, r4, r5, r6 = nil, 1, nil, nil, nil, nil, nil, nil";
  const block = own === undefined ? "" : single === undefined ? `${own}\n${table}` : own;
  const source = withOwnBlock(parts.join(`${rules} --@rules`), block);
  return defineScript<["state"], ["cost"], ScriptReply>({
    name: generic.name,
    keys: ["state"],
    args: ["cost"],
    source,
    sha1: createHash("sha1").update(source).digest("hex"),
  });
}

/** The block of lua/_lib/ratelimit-own.lua: a long comment in the shared script, its template. */
const OWN_OPEN = "--[==[\n";
const OWN_CLOSE = "\n]==]";
/** The most rules unrolled (as rl_fast's loop, which replies to a rejection itself for the first 4 rules only). */
const MAX_RULES = 4;
/** A positive integer Lua keeps exact. */
const COUNT = /^[1-9]\d{0,14}$/;

/** The parts of the block of lua/_lib/ratelimit-own.lua, by name ("fw", "fw reject", "bucket one", ...). */
function ownParts(): { main: string; part: (name: string, values: Record<string, string>) => string } {
  const text = ownTemplate(ratelimitScripts.consume.source).text;
  const [main = "", ...sections] = text.split(/^-- @([a-z]+(?: reject| write| one| whole| new)?)\n/m);
  const parts = new Map<string, string>();
  for (let j = 0; j + 1 < sections.length; j += 2) parts.set(sections[j] as string, sections[j + 1] as string);
  const part = (name: string, values: Record<string, string>) => {
    const text = parts.get(name);
    if (text === undefined) throw new Error(`ratelimit/consume: no part "-- @${name}" in lua/_lib/ratelimit-own.lua`);
    return fill(text, values).trimEnd();
  };
  return { main, part };
}

/**
 * The code of lua/_lib/ratelimit-own.lua for one rule (its part "-- @<alg> one"): the rule's usual call decided in
 * straight-line code at the script's top level, its constants in place (no function built and called per call, as
 * rl_fast is). `undefined` for a rule whose numbers are not plain positive integers: rl_fast decides those.
 */
function oneBlock(ruleArgs: readonly string[]): string | undefined {
  const [field = "", limit = "", w = "", cap = ""] = ruleArgs;
  const bucket = limit.startsWith("-");
  const values: Record<string, string> = {
    field,
    name: field.replace(/[^A-Za-z0-9]/g, "%$&"), // the field as a pattern matches it
    limit: limit.replace(/^-/, ""),
    w: w.replace(/^-/, ""),
    unit: w,
    cap,
    offset: String(field.length + 2),
    full: "nil",
  };
  if (!/^[A-Za-z0-9_.|-]{1,80}$/.test(field) || !COUNT.test(values.limit as string) || !COUNT.test(values.w as string))
    return undefined;
  if (bucket) {
    if (!COUNT.test(cap)) return undefined;
    // a bucket's level once full less one unit, and its ticks per unit, as the entry's text ends (Lua's '%d')
    const level = (Number(cap) - 1) * Number(w);
    if (Number.isSafeInteger(level)) values.full = `'${level}:${w}'`;
  }
  return ownParts().part(`${bucket ? "bucket" : w.startsWith("-") ? "sw" : "fw"} one`, values);
}

function ownTemplate(source: string): { start: number; end: number; text: string } {
  const start = source.indexOf(OWN_OPEN);
  const end = source.indexOf(OWN_CLOSE, start);
  if (start < 0 || end < 0 || source.indexOf(OWN_OPEN, end) >= 0)
    throw new Error("ratelimit/consume: expected one --[==[ ... ]==] block (lua/_lib/ratelimit-own.lua) in the script");
  return { start, end: end + OWN_CLOSE.length, text: source.slice(start + OWN_OPEN.length, end) };
}

/** Replaces the names `$name` of a template part; a name without a value is a mistake in the template. */
function fill(part: string, values: Record<string, string>): string {
  return part.replace(/\$([a-z]+)/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`ratelimit/consume: no value for $${name} in lua/_lib/ratelimit-own.lua`);
    return value;
  });
}

/**
 * The code of lua/_lib/ratelimit-own.lua for two to four rules (`ruleArgs` as {@link rulesArgs} makes them): each
 * rule's parts (decide, reject, write) with its constants and locals, one pattern reading every entry (its captures
 * k1...). `undefined` for other rule sets (one rule, more than four, a repeated field, a number that is not a plain
 * positive integer): rl_fast decides those.
 */
function ownBlock(ruleArgs: readonly string[]): string | undefined {
  const { main, part } = ownParts();
  const decide: string[] = [];
  const reject: string[] = [];
  const write: string[] = [];
  const patterns: string[] = [];
  const captures: string[] = [];
  const entries: string[] = [];
  // The value made by one format (lua/_lib/ratelimit-own.lua): each rule's usual forms (condition, format, arguments),
  // its expAtMs, where that is found in the value (offset, and the text it follows for a rule after the first).
  const forms: { cond: string; format: string; args: string }[][] = [];
  const wholePrep: string[] = [];
  const wholeAt: string[] = [];
  // A new key (lua/_lib/ratelimit-own.lua): each rule's entry as format, arguments and code, its expAtMs's place.
  const fresh: { format: string; args: string; at: string }[] = [];
  let place = 1; // where the next entry starts in the new key's value
  let behind = 0; // the longest a sliding window's start lies before now
  let freshSafe = true;
  /** A rule's usual forms in the one format, nested: `value` set by the first that holds for every rule. */
  const wholeFormat = (j: number, format: string[], args: string[], indent: string): string => {
    const rule = forms[j];
    if (rule === undefined) return `${indent}value = format('${format.join(";")}', ${args.join(", ")})`;
    if (rule.length === 0) return "";
    const branches = rule.map(
      (form, k) =>
        `${indent}${k === 0 ? "if" : "elseif"} ${form.cond} then\n${wholeFormat(j + 1, [...format, form.format], [...args, form.args], `${indent}  `)}`,
    );
    return `${branches.join("\n")}\n${indent}end`;
  };
  const fields = new Set<string>();
  const capture = () => {
    captures.push(`k${captures.length + 1}`);
    return captures[captures.length - 1] as string;
  };
  for (let i = 0; i < ruleArgs.length; ) {
    const [field = "", limit = "", w = "", cap = ""] = ruleArgs.slice(i, i + 4);
    const alg = limit.startsWith("-") ? "bucket" : w.startsWith("-") ? "sw" : "fw";
    const n = String(entries.length + 1);
    const values: Record<string, string> = {
      n,
      field,
      limit: limit.replace(/^-/, ""),
      w: w.replace(/^-/, ""),
      offset: String(field.length + 2),
    };
    if (fields.has(field) || !/^[A-Za-z0-9_.|-]{1,80}$/.test(field)) return undefined;
    if (!COUNT.test(values.limit as string) || !COUNT.test(values.w as string)) return undefined;
    fields.add(field);
    entries.push(`x${n}`);
    const name = field.replace(/[^A-Za-z0-9]/g, "%$&"); // the field as a pattern matches it
    if (alg === "bucket") {
      if (!COUNT.test(cap)) return undefined;
      // a full bucket's level less one unit, in ticks, and as the entry's text (Lua's '%d'); -1: never a level
      const level = (Number(cap) - 1) * Number(w);
      const full = Number.isSafeInteger(level) && Number.isSafeInteger(Number(cap) * Number(w)) ? String(level) : "-1";
      Object.assign(values, { cap, unit: w, fl: full, full, e: capture(), a: capture(), b: capture(), c: capture() });
      const capt = `${cap} * ${values.w}`;
      if (full === "-1") freshSafe = false;
      fresh.push({ format: `${field}=%d:%d:${full}:${w}`, args: `f${n}, now`, at: part("bucket new", values) });
      forms.push(
        full === "-1"
          ? []
          : [{ cond: `level${n} == ${capt}`, format: `${field}=%d:%d:${full}:${w}`, args: `f${n}, last${n}` }],
      );
      wholePrep.push(part("bucket whole", values));
      wholeAt.push(
        `if f${n} > at then at, ato, atf = f${n}, ${values.offset}, ${n === "1" ? "nil" : `';${field}='`} end`,
      );
      patterns.push(`${name}=(%d+):(%d+):(%d+):(%d+)`);
      i += 4;
    } else {
      Object.assign(values, { h: capture(), e: capture(), a: capture(), b: capture() });
      if (alg === "sw") values.c = capture();
      const { h, c } = values;
      forms.push(
        alg === "sw"
          ? [
              { cond: `same${n}`, format: "%s%d:%s", args: `${h}, curr${n} + 1, ${c}` },
              { cond: `curr${n} == 0 and prev${n} == 0`, format: `${field}=%d:%d:1:0`, args: `f${n}, cs${n}` },
            ]
          : [
              { cond: `same${n}`, format: "%s%d", args: `${h}, count${n} + 1` },
              { cond: `count${n} == 0`, format: `${field}=%d:%d:1`, args: `exp${n}, start${n}` },
            ],
      );
      if (alg === "sw") wholePrep.push(part("sw whole", values));
      if (alg === "sw") behind = Math.max(behind, Number(values.w));
      fresh.push({
        format: `${field}=%d:%d:1${alg === "sw" ? ":0" : ""}`,
        args: alg === "sw" ? `f${n}, c${n}` : `f${n}, now`,
        at: part(`${alg} new`, values),
      });
      const exp = alg === "sw" ? `f${n}` : `exp${n}`;
      wholeAt.push(
        `if ${exp} > at then at, ato, atf = ${exp}, ${values.offset}, ${n === "1" ? "nil" : `';${field}='`} end`,
      );
      patterns.push(`(${name}=(%d+):(%d+):)(%d+)${alg === "sw" ? ":(%d+)" : ""}`);
      i += 3;
    }
    const entry = fresh[fresh.length - 1] as { format: string; args: string; at: string };
    entry.at += `\n  ${n === "1" ? "local at, ato =" : `if f${n} > at then at, ato =`} f${n}, ${place + field.length + 1}${n === "1" ? "" : " end"}`;
    place += entry.format.replace(/%d/g, "0123456789012").length + 1; // every %d 13 digits
    decide.push(part(alg, values));
    reject.push(part(`${alg} reject`, values));
    write.push(part(`${alg} write`, values));
  }
  if (entries.length < 2 || entries.length > MAX_RULES) return undefined;
  return fill(main, {
    captures: captures.join(", "),
    pattern: `^${patterns.join(";")}$`,
    first: captures[0] as string,
    decide: decide.join("\n").trim(),
    reject: reject.join("\n").trim().replace(/\n/g, "\n  "),
    reply: entries.map((_, j) => `wait${j + 1}, remaining${j + 1}, reset${j + 1}`).join(", "),
    entries: entries.join(", "),
    write: write.join("\n").trim().replace(/\n/g, "\n  "),
    value: entries.join(" .. ';' .. "),
    newkey: freshSafe ? `not v and cost == 1 and now >= ${1e12 + behind}` : "false",
    new: fresh
      .map((entry) => entry.at)
      .join("\n")
      .trim()
      .replace(/\n/g, "\n  "),
    newformat: fresh.map((entry) => entry.format).join(";"),
    newargs: fresh.map((entry) => entry.args).join(", "),
    wholeprep: wholePrep.join("\n").trim().replace(/\n/g, "\n  "),
    whole: wholeFormat(0, [], [], "    ").trim(),
    wholeat: wholeAt.join("\n      "),
  }).trimEnd();
}

/** The script with its block of lua/_lib/ratelimit-own.lua replaced by `code`. */
function withOwnBlock(source: string, code: string): string {
  const { start, end } = ownTemplate(source);
  return source.slice(0, start) + code + source.slice(end);
}
