import { InvalidArgumentError } from "@coordis/core";
import type { FastifyRequest } from "fastify";
import { addressKey } from "./address-key.js";
import type { Claim, GroupLedger } from "./group-ledger.js";
import { type Limiters, type RuleSetLimiter, specOf } from "./limiters.js";
import {
  parseHookRateLimit,
  parseRouteRateLimit,
  type RateLimitDefaults,
  type RateLimitHook,
  type RateLimitKeyFn,
  type RateLimitRulesFn,
  type RateLimitSettings,
  type RouteRateLimit,
  renamed,
} from "./options.js";
import { constraintsText, routeGroup } from "./rate-limit-key.js";

/** A route's limit, resolved and validated once. */
export interface RouteLimit {
  /** `"<METHOD> <url>"`. */
  readonly id: string;
  /** The budget's group: the route's own (`route.<hash>`) or a shared one. */
  readonly group: string;
  readonly hook: RateLimitHook;
  readonly key: RateLimitKeyFn;
  readonly rules: RuleSetLimiter | RateLimitRulesFn;
  readonly cost: number | ((request: FastifyRequest) => number);
  readonly allow: ReadonlySet<string> | ((request: FastifyRequest, key: string) => boolean | Promise<boolean>) | null;
  readonly draft: boolean;
  readonly legacy: boolean;
  readonly retryAfter: boolean;
  readonly onAllowed: boolean;
  readonly errorResponseBuilder: RateLimitSettings["errorResponseBuilder"];
  readonly onExceeding: RateLimitSettings["onExceeding"];
  readonly onExceeded: RateLimitSettings["onExceeded"];
  readonly ban: number | undefined;
}

/** `"<METHOD> <url>"` (and its constraints, if any), the route's name in errors and in `peekRateLimit`. */
export function routeId(
  method: string | string[],
  url: string,
  constraints?: Readonly<Record<string, unknown>>,
): string {
  return `${Array.isArray(method) ? method.join(",") : method} ${url}${constraintsText(constraints)}`;
}

/** The client address; `request.ip` of a request whose socket closed is undefined, answered as a missing key (500). */
const defaultKey: RateLimitKeyFn = (request) => {
  const ip: unknown = request.ip;
  return typeof ip === "string" ? addressKey(ip) : (ip as string);
};

/**
 * Resolves routes' limits from their config and the plugin defaults, and checks that routes sharing a group agree
 * on its rules (a shared budget has one set of rules).
 */
export class RouteLimits {
  readonly #defaults: RateLimitDefaults;
  readonly #limiters: Limiters;
  /**
   * Group -> the routes using it and their rules, to check that routes sharing a budget agree: shared groups, the
   * routes' own budgets (no group), and those of the other registrations of the plugin with this prefix and server.
   */
  readonly #ledger: GroupLedger;
  /** `"<METHOD> <url>"` (and constraints) of every limited route, one entry per method -> its limit, for peeks. */
  readonly #byRoute = new Map<string, RouteLimit>();
  /** Shared group -> the limit of the first route naming it (routes sharing a group have identical rules). */
  readonly #byGroup = new Map<string, RouteLimit>();
  /** Hooks made by `resolveHook`, numbering them. */
  #hooks = 0;

  constructor(defaults: RateLimitDefaults, limiters: Limiters, ledger: GroupLedger) {
    this.#defaults = defaults;
    this.#limiters = limiters;
    this.#ledger = ledger;
  }

  /** Forgets this registration's routes in the checks of the other registrations (its app closed). */
  release(): void {
    this.#ledger.release();
  }

  /**
   * Resolves and validates a route's limit; `undefined` when the route has none. `budgetUrl` names the route's own
   * budget when another URL than `url` does (the GET route serving the same requests is declared under it).
   * @throws InvalidArgumentError naming the route's option
   */
  resolve(
    method: string | string[],
    url: string,
    config: unknown,
    constraints?: Readonly<Record<string, unknown>>,
    budgetUrl?: string,
  ): RouteLimit | undefined {
    const defaults = this.#defaults;
    const id = routeId(method, url, constraints);
    const where = `route ${id}: config`;
    const cfg = (config ?? {}) as { rateLimit?: unknown; coordis?: unknown };
    // config.rateLimit belongs to @fastify/rate-limit; a Coordis-shaped one is a leftover that would silently do nothing.
    const legacy = cfg.rateLimit as Record<string, unknown> | boolean | undefined;
    if (
      legacy === true ||
      (legacy !== null &&
        typeof legacy === "object" &&
        ("rules" in legacy || "group" in legacy || "cost" in legacy || "key" in legacy))
    ) {
      throw new InvalidArgumentError(
        `${where}.rateLimit`,
        "@coordis/fastify reads config.coordis.rateLimit (config.rateLimit is @fastify/rate-limit's); move it there",
      );
    }
    if (cfg.coordis === undefined && defaults.global !== true) return undefined;
    const own = parseRouteRateLimit(where, cfg.coordis, defaults.global === true);
    if (own === undefined) return undefined;
    const limit = this.#build(`${where}.coordis.rateLimit`, id, own, routeGroup(method, budgetUrl ?? url, constraints));
    this.#byRoute.set(id, limit);
    if (Array.isArray(method)) for (const m of method) this.#byRoute.set(routeId(m, url, constraints), limit);
    return limit;
  }

  /**
   * The limit of a hook the app adds itself (`coordis.rateLimitHook(settings)`): a route's settings, whose budget is
   * the named `group` (the settings' or the defaults'), since the hook is on no route to name it after.
   * @throws InvalidArgumentError naming the setting
   */
  resolveHook(settings: unknown): RouteLimit {
    const own = parseHookRateLimit("settings", settings);
    const group = own.group ?? this.#defaults.group;
    if (group === undefined) {
      throw new InvalidArgumentError(
        "settings.group",
        'a hook is on no route to name its budget after: give it a group (e.g. "not-found"), or the plugin defaults one',
      );
    }
    // Called as an onRequest / preHandler hook is (request, reply, done), wherever the app adds it.
    // Each hook is its own "route" for the group check: a second hook of the group with other rules is refused.
    const id = `hook ${++this.#hooks} of group "${group}"`;
    return this.#build("settings", id, { ...own, group, hook: "onRequest" }, group);
  }

  /** A limit from a route's (or a hook's) own settings and the plugin defaults. */
  #build(name: string, id: string, own: RouteRateLimit, ownGroup: string): RouteLimit {
    const defaults = this.#defaults;
    const rules = own.rules ?? defaults.rules;
    if (rules === undefined) throw new InvalidArgumentError(`${name}.rules`, "no rules and no plugin default rules");
    // Both checked already (the route's by parseRouteRateLimit, the defaults' at registration).
    const explicitGroup = own.group ?? defaults.group;
    let pair: RuleSetLimiter | undefined;
    if (typeof rules !== "function") {
      try {
        pair = this.#limiters.limiterOf(rules);
      } catch (err) {
        throw renamed(err, name);
      }
    }
    const cost = own.cost ?? defaults.cost ?? 1;
    if (pair !== undefined && typeof cost === "number") {
      if (cost > pair.maxCost) {
        throw new InvalidArgumentError(`${name}.cost`, `${cost} is above the smallest rule capacity ${pair.maxCost}`);
      }
    }
    // The rules' identity: a rule set's spec (one limiter per distinct spec, in every registration), or the rules
    // function itself.
    const identity = typeof rules === "function" ? rules : specOf(rules);
    this.#checkPrefixes(name, explicitGroup ?? ownGroup);
    if (explicitGroup !== undefined) this.#checkGroup(name, id, explicitGroup, rules, identity);
    else this.#checkOwn(name, id, ownGroup, identity);
    // `false` on the route turns off what the defaults set; undefined takes the defaults'.
    const allowList = own.allowList ?? defaults.allowList;
    const ban = own.ban ?? defaults.ban;
    // Per field: a field the route leaves undefined takes the defaults', as every other setting does.
    const headers = { ...defaults.headers };
    for (const [k, v] of Object.entries(own.headers ?? {})) if (v !== undefined) Object.assign(headers, { [k]: v });
    const key = own.key ?? defaults.key ?? defaultKey;
    const limit: RouteLimit = {
      id,
      group: explicitGroup ?? ownGroup,
      hook: own.hook ?? defaults.hook ?? "onRequest",
      key,
      rules: pair ?? (rules as RateLimitRulesFn),
      cost,
      allow:
        allowList === undefined || allowList === false
          ? null
          : typeof allowList === "function"
            ? allowList
            : // With the default key, an address listed is read as the key reads a client's (an IPv6 one by its
              // /64, an IPv4-mapped one as IPv4): listed as written, it would never match.
              new Set(key === defaultKey ? allowList.map((entry) => addressKey(entry)) : allowList),
      draft: headers.draft ?? true,
      legacy: headers.legacy ?? false,
      retryAfter: headers.retryAfter ?? true,
      onAllowed: headers.onAllowed ?? true,
      errorResponseBuilder: own.errorResponseBuilder ?? defaults.errorResponseBuilder,
      onExceeding: own.onExceeding ?? defaults.onExceeding,
      onExceeded: own.onExceeded ?? defaults.onExceeded,
      ban: ban === false ? undefined : ban,
    };
    if (explicitGroup !== undefined && !this.#byGroup.has(explicitGroup)) this.#byGroup.set(explicitGroup, limit);
    return limit;
  }

  /**
   * The limit of a limited route the plugin has seen, by `"<METHOD> <url>"` as in its errors (one method of a route
   * with several; `HEAD` names the route serving GET); `undefined` for a route without a limit or not seen yet.
   */
  routeLimit(route: string): RouteLimit | undefined {
    const found = this.#byRoute.get(route);
    if (found !== undefined || !route.startsWith("HEAD ")) return found;
    return this.#byRoute.get(`GET ${route.slice("HEAD ".length)}`);
  }

  /** The limit of the first route sharing `group`; `undefined` when no route names it. */
  groupLimit(group: string): RouteLimit | undefined {
    return this.#byGroup.get(group);
  }

  /**
   * A route's own budget is shared only by the routes Fastify serves one resource with: the route serving GET and a
   * HEAD route of its URL (the one Fastify adds, with the same settings, or one of the app's own). Their rules must
   * be identical, or a HEAD request would spend the GET route's budget under other figures, or the other way round.
   */
  #checkOwn(name: string, id: string, group: string, identity: unknown): void {
    const other = this.#ledger.claim(group, id, identity);
    if (other === undefined) return;
    if (this.#ledger.isOthers(other)) {
      throw new InvalidArgumentError(`${name}.rules`, `route ${id} ${this.#others(other)}`);
    }
    throw new InvalidArgumentError(
      `${name}.rules`,
      `route ${id} counts on the budget of route ${other.route} (HEAD counts as GET, as Fastify serves it), which ` +
        "has different rules: give both the same rules, or give one of them a group of its own",
    );
  }

  /** What is wrong with sharing the budget of `other`, a route of another registration, under other rules. */
  #others(other: Claim): string {
    return (
      `counts on the budget of route ${other.route}, declared in another registration of @coordis/fastify with ` +
      `prefix "${this.#ledger.prefix}" on this Redis server, which has different rules: both would count the same ` +
      "Redis keys under different figures. Give the registrations different prefixes to keep their budgets apart, " +
      "or both routes the same rules"
    );
  }

  /**
   * A group's keys are "<group>:<key>": with groups "api" and "api:v2", key "v2:<id>" of the first would be key
   * "<id>" of the second, one budget counted by both. Checked for a group new to the ledger.
   */
  #checkPrefixes(name: string, group: string): void {
    if (this.#ledger.has(group)) return;
    for (const [other, claim] of this.#ledger.groups()) {
      const [short, long] = other.length < group.length ? [other, group] : [group, other];
      if (long.startsWith(`${short}:`)) {
        const whose = this.#ledger.isOthers(claim)
          ? `route ${claim.route}, declared in another registration of @coordis/fastify with prefix "${this.#ledger.prefix}" on this Redis server`
          : `route ${claim.route}`;
        throw new InvalidArgumentError(
          `${name}.group`,
          `group "${group}" and group "${other}" (${whose}) would share Redis keys ("${long}:<key>" is also ` +
            `"${short}:${long.slice(short.length + 1)}:<key>"); rename one so that neither is the other followed by ":"`,
        );
      }
    }
  }

  /** Routes sharing a group need named rules, identical for all of them. */
  #checkGroup(
    name: string,
    id: string,
    group: string,
    rules: NonNullable<RateLimitSettings["rules"]>,
    identity: unknown,
  ): void {
    if (Array.isArray(rules) && rules.some((r) => r === null || typeof r !== "object" || r.name === undefined)) {
      throw new InvalidArgumentError(
        `${name}.rules`,
        `routes sharing group "${group}" need named rules (a name is part of the shared budget's state)`,
      );
    }
    const other = this.#ledger.claim(group, id, identity);
    if (other === undefined) return;
    if (this.#ledger.isOthers(other)) {
      throw new InvalidArgumentError(`${name}.rules`, `route ${id} of group "${group}" ${this.#others(other)}`);
    }
    throw new InvalidArgumentError(
      `${name}.rules`,
      `group "${group}" is shared with route ${other.route}, which has different rules; routes sharing a group need identical rules`,
    );
  }
}
