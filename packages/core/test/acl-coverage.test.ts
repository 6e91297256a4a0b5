import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ACL_COMMAND_RULES } from "@coordis/core";
import { describe, expect, it } from "vitest";

const LUA = join(import.meta.dirname, "..", "..", "..", "lua");
/** Commands whose first argument is a subcommand with an ACL rule of its own (`+xgroup|create`). */
const CONTAINERS = new Set(["xgroup", "xinfo", "client", "object", "config", "script", "cluster"]);

/** Every `redis.call('<CMD>'...)` / `redis.pcall` with a literal command name in the scripts, as `cmd` or `cmd|sub`. */
function scriptCommands(): Map<string, string> {
  const found = new Map<string, string>();
  for (const dir of readdirSync(LUA, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const file of readdirSync(join(LUA, dir.name))) {
      if (!file.endsWith(".lua")) continue;
      const text = readFileSync(join(LUA, dir.name, file), "utf8");
      for (const m of text.matchAll(/redis\.p?call\(\s*'([A-Za-z]+)'(?:\s*,\s*'([A-Za-z]+)')?/g)) {
        const cmd = (m[1] as string).toLowerCase();
        const name = CONTAINERS.has(cmd) && m[2] !== undefined ? `${cmd}|${m[2].toLowerCase()}` : cmd;
        if (!found.has(name)) found.set(name, `${dir.name}/${file}`);
      }
    }
  }
  return found;
}

// Redis checks every command a script runs against the caller's ACL: a command missing from aclRules() fails that
// script for every least-privilege user, at run time, whatever the tests with the default user show.
describe("aclRules() covers the scripts", () => {
  it("every command a script runs has an ACL rule", () => {
    const commands = scriptCommands();
    expect(commands.size).toBeGreaterThan(20);
    const allowed = new Set(ACL_COMMAND_RULES.map((r) => r.slice(1)));
    const missing = [...commands].filter(([name]) => !allowed.has(name) && !allowed.has(name.split("|")[0] as string));
    expect(missing.map(([name, file]) => `${name} (${file})`)).toEqual([]);
  });
});
