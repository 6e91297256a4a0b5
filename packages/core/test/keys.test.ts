import {
  entityKeys,
  hashTagOf,
  InvalidArgumentError,
  MAX_NAME_BYTES,
  parseRedisUrl,
  slotOf,
  validateName,
  validatePrefix,
} from "@coordis/core";
import fc from "fast-check";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";

const wellFormed = (s: string) => s.isWellFormed();
const validName = fc
  .string({ unit: "grapheme", minLength: 1, maxLength: 60 })
  .filter((s) => !s.includes("{") && !s.includes("}") && wellFormed(s) && Buffer.byteLength(s) <= MAX_NAME_BYTES);
const validPrefix = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/);

function rejects(fn: () => unknown, argument: string): void {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect((error as InvalidArgumentError).argument).toBe(argument);
}

describe("key builder", () => {
  it("puts every key of an entity under the entity name as hash tag, for any valid prefix and name", () => {
    fc.assert(
      fc.property(
        validPrefix,
        validName,
        fc.array(fc.stringMatching(/^[a-z]{1,8}$/), { maxLength: 3 }),
        (p, n, parts) => {
          const keys = entityKeys(p, "lock", n);
          expect(keys.base).toBe(`${p}:lock:{${n}}`);
          expect(keys.tag).toBe(`{${n}}`);
          expect(hashTagOf(keys.base)).toBe(n);
          expect(hashTagOf(keys.sub(...parts))).toBe(n);
          expect(slotOf(keys.sub(...parts))).toBe(slotOf(keys.base));
        },
      ),
    );
  });

  it("rejects names with braces, empty or oversized names and lone surrogates", () => {
    fc.assert(
      fc.property(fc.string(), fc.constantFrom("{", "}"), fc.string(), (a, brace, b) => {
        rejects(() => validateName(`${a}${brace}${b}`), "name");
      }),
    );
    rejects(() => validateName(""), "name");
    rejects(() => validateName("x".repeat(MAX_NAME_BYTES + 1)), "name");
    rejects(() => validateName("é".repeat(MAX_NAME_BYTES / 2 + 1)), "name");
    rejects(() => validateName("a\uD800b"), "name");
    rejects(() => validateName(42), "name");
    expect(validateName("x".repeat(MAX_NAME_BYTES))).toHaveLength(MAX_NAME_BYTES);
  });

  it("rejects prefixes outside the allowed alphabet or length", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 0, maxLength: 80 }).filter((s) => !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(s)),
        (p) => {
          rejects(() => validatePrefix(p), "prefix");
        },
      ),
    );
    fc.assert(
      fc.property(validPrefix, (p) => {
        expect(validatePrefix(p)).toBe(p);
      }),
    );
    rejects(() => entityKeys("ok", "Bad Kind", "n"), "kind");
  });

  it("computes the same slot as Redis CLUSTER KEYSLOT", async () => {
    const [first] = parseRedisUrl(inject("coordisClusterUrl")).hosts;
    const node = new Redis({ host: first?.host, port: first?.port });
    try {
      const keys = fc.sample(
        fc.oneof(
          fc.string({ unit: "grapheme", maxLength: 30 }),
          validName.map((n) => `p:k:{${n}}:x`),
        ),
        300,
      );
      keys.push("{}", "{}x", "a{b}c{d}", "{{a}}", "foo{}{bar}", "{user1000}.following");
      const slots = await Promise.all(keys.map((k) => node.cluster("KEYSLOT", k)));
      expect(keys.map(slotOf)).toEqual(slots);
    } finally {
      node.disconnect();
    }
  });
});
