import { randomBytes } from "node:crypto";

/**
 * A random key prefix for one test file (`coordis:<label>-<hex>`), so test files can run in parallel against one
 * server without seeing each other's keys. Valid for every Coordis `prefix` option, and inside the `coordis:*` key
 * and channel patterns of the least-privilege ACL user the shared test servers run with.
 */
export function testPrefix(label = "t"): string {
  return `coordis:${label}-${randomBytes(6).toString("hex")}`;
}
