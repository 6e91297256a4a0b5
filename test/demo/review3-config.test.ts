import { loadConfig } from "@coordis/demo";
import { describe, expect, it } from "vitest";

// A replica reads its environment once, at start, and a malformed value must be refused there, naming its variable.
// LOG_LEVEL and TRUST_PROXY were passed on unchecked: Fastify refused them while the replica connected, and the
// replica blamed Redis ("could not start with Redis at ... (REDIS_URL): default level:verbose must be included in
// custom levels", "...: invalid IP address: foo").
describe("demo configuration", () => {
  it.each(["verbose", "WARN", "warning", " info"])("refuses LOG_LEVEL=%j, naming the variable", (level) => {
    expect(() => loadConfig({ LOG_LEVEL: level })).toThrow(/^LOG_LEVEL must be one of .*silent/);
  });

  it.each(["fatal", "error", "warn", "info", "debug", "trace", "silent"])("accepts LOG_LEVEL=%s", (level) => {
    expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
  });

  it.each(["foo", "1.5", "10.0.0.0/8,foo", "10.0.0.0/33", "10.0.0.0/", "::1/129", ",", "127.0.0.1,,10.0.0.1"])(
    "refuses TRUST_PROXY=%j, naming the variable",
    (value) => {
      expect(() => loadConfig({ TRUST_PROXY: value })).toThrow(/^TRUST_PROXY must be/);
    },
  );

  it.each([
    ["true", true],
    ["false", false],
    ["127.0.0.1", "127.0.0.1"],
    ["loopback, 10.0.0.0/8", "loopback, 10.0.0.0/8"],
    ["10.0.0.0/255.0.0.0,fd00::/8,uniquelocal,linklocal", "10.0.0.0/255.0.0.0,fd00::/8,uniquelocal,linklocal"],
  ] as const)("accepts TRUST_PROXY=%j", (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }).trustProxy).toBe(expected);
  });
});
