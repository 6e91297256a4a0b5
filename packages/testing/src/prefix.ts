import { randomBytes } from "node:crypto";

/**
 * A random key prefix for one test file (`t-<hex>`), so test files can run in parallel against one server without
 * seeing each other's keys. Valid for every Coordis `prefix` option.
 */
export function testPrefix(label = "t"): string {
  return `${label}-${randomBytes(6).toString("hex")}`;
}
