import { randomBytes } from "node:crypto";
import { aclRules } from "@coordis/core";
import { LEAST_PRIVILEGE_USER, type LeastPrivilegeOptions, type StartRedisOptions } from "./server-types.js";

/** The user and `redis-server` arguments of {@link StartRedisOptions.leastPrivilege}. Internal. */
export function leastPrivilegeUser(option: StartRedisOptions["leastPrivilege"]): {
  user: { name: string; password: string } | undefined;
  args: string[];
} {
  if (option === undefined || option === false) return { user: undefined, args: [] };
  const lp: LeastPrivilegeOptions = option === true ? {} : option;
  const user = { name: LEAST_PRIVILEGE_USER, password: lp.password ?? randomBytes(12).toString("hex") };
  const rules = aclRules({ ...(lp.prefix === undefined ? {} : { prefix: lp.prefix }), cluster: lp.cluster === true });
  return { user, args: ["--user", user.name, "on", `>${user.password}`, ...rules, ...(lp.extraRules ?? [])] };
}

/** `user:password@` for a URL. Internal. */
export function userInfo(user: { name: string; password: string }): string {
  return `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@`;
}
