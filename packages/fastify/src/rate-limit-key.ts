import { createHash } from "node:crypto";
import { InvalidArgumentError, MAX_NAME_BYTES, validate } from "@coordis/core";

const GROUP_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** Validates a rate-limit group name (the budget several routes share). */
export function isValidGroup(group: unknown): group is string {
  return typeof group === "string" && GROUP_PATTERN.test(group);
}

/**
 * The group of a route's own budget (a route without `group`): `route.<16 hex of sha256("<METHOD> <url>")>`. A route
 * that serves GET is named by `GET` alone, and `HEAD` counts as `GET` (Fastify serves HEAD from the route that serves
 * GET, of one method or several: at most one route serves GET for a URL). The url is the route's pattern
 * (`/users/:id`), so all requests to one route share its budget per key. A route with constraints (`version`, `host`)
 * has them in its name: routes of one method and URL that differ in their constraints are different routes.
 */
export function routeGroup(
  method: string | string[],
  url: string,
  constraints?: Readonly<Record<string, unknown>>,
): string {
  const methods = Array.isArray(method) ? method : [method];
  if (methods.length === 0 || methods.some((m) => typeof m !== "string" || m === "")) {
    throw new InvalidArgumentError(
      "method",
      `expected an HTTP method ("GET") or an array of them, got ${validate.describeValue(method)}`,
    );
  }
  validate.string("url", url);
  if (constraints !== undefined) validate.options("constraints", constraints);
  const m = methods.includes("GET") || methods.includes("HEAD") ? "GET" : methods.join(",");
  const name = `${m} ${url}${constraintsText(constraints)}`;
  return `route.${createHash("sha256").update(name, "utf8").digest("hex").slice(0, 16)}`;
}

/** A route's constraints as text, `""` for none: ` (<name> <value>, ...)` in name order. */
export function constraintsText(constraints: Readonly<Record<string, unknown>> | undefined): string {
  if (constraints === undefined) return "";
  const names = Object.keys(constraints).sort();
  if (names.length === 0) return "";
  return ` (${names.map((n) => `${n} ${String(constraints[n])}`).join(", ")})`;
}

/**
 * Turns what a key function returned into a valid rate-limit key `<group>:<key>`. Keys that cannot be Redis hash
 * tags (braces, too long, not well-formed Unicode, empty) are replaced by `h:<sha256>` of their text, so a client
 * cannot make the limiter throw by choosing its API key; so are keys starting with `ban:` (or `h:`), so a client
 * cannot count on a route's ban counter (`banKey`) or on another key's hashed budget by choosing its API key.
 */
export function rateLimitKey(group: string, raw: string): string {
  checkKeyArguments(group, raw);
  return budgetKey(group, raw);
}

/** {@link rateLimitKey} of arguments known to be valid (the plugin's own calls, per request). */
export function budgetKey(group: string, raw: string): string {
  return keyOf(group, raw, raw.startsWith("ban:") || raw.startsWith("h:"));
}

/**
 * The key of the counter of a route's rejections of `raw`, for `ban`: `<group>:ban:<key>`, or `<group>:ban:h:<sha256>`
 * for a key that must be hashed or starts with `h:`: never a key `rateLimitKey` gives (its hashed keys are
 * `<group>:h:...`, and every key starting with `ban:` is hashed there), nor another key's counter (kept as it is,
 * `h:<sha256>`'s counter would be that of the hashed key whose `ban:<key>` has this digest).
 */
export function banKey(group: string, raw: string): string {
  checkKeyArguments(group, raw);
  return banCounterKey(group, raw);
}

/** {@link banKey} of arguments known to be valid (the plugin's own calls, per request). */
export function banCounterKey(group: string, raw: string): string {
  const key = keyOf(group, `ban:${raw}`, raw.startsWith("h:"));
  const hashed = `${group}:h:`;
  return key.startsWith(hashed) ? `${group}:ban:h:${key.slice(hashed.length)}` : key;
}

function keyOf(group: string, raw: string, hashed: boolean): string {
  const text = `${group}:${raw}`;
  const safe =
    !hashed &&
    raw.length > 0 &&
    !raw.includes("{") &&
    !raw.includes("}") &&
    raw.isWellFormed() &&
    (text.length * 3 <= MAX_NAME_BYTES || Buffer.byteLength(text, "utf8") <= MAX_NAME_BYTES);
  return safe ? text : `${group}:h:${createHash("sha256").update(raw, "utf8").digest("hex")}`;
}

/** The arguments of `rateLimitKey` and `banKey`: a group as routes name it, a key as a key function returns it. */
function checkKeyArguments(group: unknown, raw: unknown): void {
  if (!isValidGroup(group)) {
    throw new InvalidArgumentError(
      "group",
      `expected a group name (a route's group, or routeGroup(method, url) for its own budget), got ${validate.describeValue(group)}`,
    );
  }
  if (typeof raw !== "string" || raw === "") {
    throw new InvalidArgumentError(
      "raw",
      `expected a key as the key function returns it (a non-empty string), got ${validate.describeValue(raw)}`,
    );
  }
}
