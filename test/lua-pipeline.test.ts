import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ScriptDef } from "@coordis/core";
import { afterAll, describe, expect, inject, it } from "vitest";
import {
  expandIncludes,
  generateAll,
  LuaHeaderError,
  parseHeader,
  renderModule,
  repoRoot,
} from "../scripts/gen-lua.js";

const GOOD = [
  "-- Does a thing.",
  "-- KEYS[1] counter (integer): a counter",
  "-- ARGV[1] ttlMs (ms): expiry",
  "-- Reply: number",
  "return 1",
].join("\n");

describe("Lua pipeline", () => {
  const scratch = mkdtempSync(join(tmpdir(), "coordis-lua-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("committed generated modules are up to date with lua/", () => {
    const { changed, outputs } = generateAll(repoRoot, true);
    expect(outputs.length).toBeGreaterThan(0);
    expect(changed).toEqual([]);
  });

  it("reports a stale generated module", () => {
    mkdirSync(join(scratch, "lua", "demo"), { recursive: true });
    mkdirSync(join(scratch, "lua", "_lib"), { recursive: true });
    mkdirSync(join(scratch, "packages", "demo", "src"), { recursive: true });
    writeFileSync(join(scratch, "lua", "demo", "op.lua"), GOOD);
    expect(generateAll(scratch, false).changed).toEqual(["packages/demo/src/scripts.generated.ts"]);
    expect(generateAll(scratch, true).changed).toEqual([]);
    writeFileSync(join(scratch, "lua", "demo", "op.lua"), GOOD.replace("return 1", "return 2"));
    expect(generateAll(scratch, true).changed).toEqual(["packages/demo/src/scripts.generated.ts"]);
  });

  it("parses a complete header", () => {
    expect(parseHeader(GOOD, "x.lua")).toEqual({
      summary: "Does a thing.",
      keys: [{ name: "counter", type: "integer", doc: "a counter" }],
      args: [{ name: "ttlMs", unit: "ms", doc: "expiry" }],
      reply: "number",
    });
    expect(parseHeader("-- Keyless.\n-- KEYS: none\n-- ARGV: none\n-- Reply: null\nreturn nil", "y.lua").keys).toEqual(
      [],
    );
  });

  it("keeps the whole free-text paragraph of a multi-line summary, in the parsed header and the generated doc", () => {
    const text = GOOD.replace(
      "-- Does a thing.",
      "-- Does a thing when the caller's token still holds the key, and\n-- otherwise leaves it alone: the sentence goes on here.",
    );
    const summary =
      "Does a thing when the caller's token still holds the key, and otherwise leaves it alone: the sentence goes on here.";
    expect(parseHeader(text, "x.lua").summary).toBe(summary);
    const long = `${"word ".repeat(40)}end.`;
    const module = renderModule("demo", [{ path: "lua/demo/op.lua", text: `-- ${long}\n${text}` }], scratch);
    const start = module.indexOf("/**", module.indexOf("export const"));
    const doc = module.slice(start, module.indexOf("*/", start));
    const docText = doc
      .split("\n")
      .map((line) => line.replace(/^\s*\/?\*+\s?/, "").trim())
      .filter((line) => line !== "" && !/^(KEYS|ARGV):/.test(line));
    expect(docText.join(" ")).toBe(`${long} ${summary}`);
    expect(Math.max(...doc.split("\n").map((line) => line.length))).toBeLessThanOrEqual(120);
  });

  it.each([
    ["return 1", /missing header/],
    [GOOD.replace("-- Reply: number\n", ""), /no "-- Reply/],
    [GOOD.replace("-- KEYS[1] counter (integer): a counter\n", ""), /no KEYS lines/],
    [GOOD.replace("-- ARGV[1] ttlMs (ms): expiry\n", ""), /no ARGV lines/],
    [GOOD.replace("KEYS[1]", "KEYS[2]"), /out of order/],
    [GOOD.replace("-- KEYS[1] counter (integer): a counter", "-- KEYS[1] counter: a counter"), /malformed line/],
    [GOOD.replace("-- Does a thing.", "-- KEYS[1] x (string): y"), /summary/],
  ])("rejects a broken header (%#)", (text, message) => {
    expect(() => parseHeader(text, "broken.lua")).toThrow(LuaHeaderError);
    expect(() => parseHeader(text, "broken.lua")).toThrow(message);
  });

  it("expands includes from lua/_lib and rejects unknown ones", () => {
    const out = expandIncludes("--@include now-ms\nreturn now_ms()", join(repoRoot, "lua", "_lib"), "t.lua");
    expect(out).toContain("local function now_ms()");
    expect(() => expandIncludes("--@include nope", join(repoRoot, "lua", "_lib"), "t.lua")).toThrow(/not found/);
  });

  it("every generated script's SHA1 is what Redis SCRIPT LOAD returns", async () => {
    const { outputs } = generateAll(repoRoot, true);
    // SCRIPT LOAD is deliberately not granted to Coordis' ACL user: the unrestricted URL.
    const redis = connect(inject("coordisAdminRedisUrl"));
    try {
      let count = 0;
      for (const file of outputs) {
        const mod = (await import(join(repoRoot, file))) as Record<string, Record<string, ScriptDef<[], [], unknown>>>;
        for (const scripts of Object.values(mod)) {
          for (const script of Object.values(scripts)) {
            expect(await redis.script("LOAD", script.source)).toBe(script.sha1);
            expect(script.numberOfKeys).toBe(script.keys.length);
            count++;
          }
        }
      }
      expect(count).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
  });
});
