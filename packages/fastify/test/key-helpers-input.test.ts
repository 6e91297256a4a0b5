import { InvalidArgumentError } from "@coordis/core";
import { banKey, rateLimitKey, routeGroup } from "@coordis/fastify";
import { describe, expect, it } from "vitest";

describe("rateLimitKey, banKey and routeGroup refuse bad input with an error naming the argument", () => {
  it("a bad group, key, method, url or constraints is an InvalidArgumentError", () => {
    const cases: Array<[string, () => unknown]> = [
      ["group", () => rateLimitKey(5 as unknown as string, "k")],
      ["group", () => rateLimitKey("", "k")],
      ["group", () => rateLimitKey("a b", "k")],
      ["raw", () => rateLimitKey("api", 5 as unknown as string)],
      ["raw", () => rateLimitKey("api", "")],
      ["group", () => banKey(undefined as unknown as string, "k")],
      ["raw", () => banKey("api", undefined as unknown as string)],
      ["method", () => routeGroup(undefined as unknown as string, "/x")],
      ["method", () => routeGroup([], "/x")],
      ["url", () => routeGroup("GET", 5 as unknown as string)],
      ["constraints", () => routeGroup("GET", "/x", 5 as unknown as Record<string, unknown>)],
    ];
    for (const [argument, call] of cases) {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err, argument).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(argument);
    }
    // Good input still gives the keys the plugin uses.
    expect(rateLimitKey("api", "key:1")).toBe("api:key:1");
    expect(banKey("api", "key:1")).toBe("api:ban:key:1");
    expect(rateLimitKey(routeGroup("GET", "/x"), "127.0.0.1")).toMatch(/^route\.[0-9a-f]{16}:127\.0\.0\.1$/);
  });
});
