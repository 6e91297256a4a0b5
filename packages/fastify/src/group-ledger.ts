import { isCluster, type RedisClient } from "@coordis/core";

/** A route's (or a hook's) use of a budget group: its rules' identity, the route, and the registration it is of. */
export interface Claim {
  /** The rules' identity: a rule set's spec (`specOf`, a string), or the rules function itself. */
  readonly identity: unknown;
  /** `"<METHOD> <url>"`, or `hook <n> of group "<group>"`. */
  readonly route: string;
  /** The registration of the plugin that declared it. */
  readonly owner: object;
}

/** Scope (`<Redis server> <prefix>`) -> group -> the claims on it, of every live registration in the process. */
type Ledgers = Map<string, Map<string, Claim[]>>;

// On globalThis under a registered symbol, so that two copies of this package in one process share it too.
const KEY = Symbol.for("@coordis/fastify.group-ledgers.v1");
const holder = globalThis as { [KEY]?: Ledgers };
const ledgers: Ledgers = holder[KEY] ?? new Map();
holder[KEY] = ledgers;

/**
 * The budget groups of every registration of the plugin in this process that shares a key prefix and a Redis server
 * with this one: their keys are the same Redis keys (`<prefix>:rl:{<group>:<key>}`), so the checks that keep routes
 * of one registration from counting one budget under other rules must see the routes of the others too (two sibling
 * contexts each registering the plugin, two apps in one process).
 */
export class GroupLedger {
  readonly #scope: string;
  readonly #owner = {};
  /** Set by `release()`: the registration's app closed, so what it resolves later (a late hook) is not recorded. */
  #released = false;
  /** The key prefix of the registration (named in errors). */
  readonly prefix: string;

  constructor(redis: RedisClient, prefix: string) {
    this.prefix = prefix;
    this.#scope = `${serverOf(redis)} ${prefix}`;
  }

  /** The scope's groups, looked up every time: the last registration to release them drops the map. */
  get #groups(): Map<string, Claim[]> {
    let groups = ledgers.get(this.#scope);
    if (groups === undefined) {
      groups = new Map();
      ledgers.set(this.#scope, groups);
    }
    return groups;
  }

  /**
   * Records route `route`'s use of `group` by rules of `identity`, and returns a claim on the group by other rules, if
   * any (the route is then not recorded). Within this registration, a route resolved again is the same route. Across
   * registrations only rule sets are compared: a rules function of one app is never the same object as another's (two
   * apps built by one factory, each with its own closure), and what it returns cannot be known before requests come.
   */
  claim(group: string, route: string, identity: unknown): Claim | undefined {
    const groups = this.#groups;
    let claims = groups.get(group);
    if (claims === undefined) {
      claims = [];
      groups.set(group, claims);
    }
    for (const c of claims) {
      if (c.identity === identity) continue;
      const conflict =
        c.owner === this.#owner ? c.route !== route : typeof c.identity === "string" && typeof identity === "string";
      if (conflict) return c;
    }
    // One claim per rules of this registration: a route resolved again, or another route or hook with the same
    // rules (each rateLimitHook() call is a hook of its own), adds nothing to check against, and an app calling
    // rateLimitHook() per request must not grow the ledger.
    if (this.#released) {
      if (claims.length === 0) groups.delete(group);
      if (groups.size === 0) ledgers.delete(this.#scope);
    } else if (!claims.some((c) => c.owner === this.#owner && c.identity === identity)) {
      claims.push({ identity, route, owner: this.#owner });
    }
    return undefined;
  }

  /** Whether some route (of any registration in scope) uses `group`. */
  has(group: string): boolean {
    return ledgers.get(this.#scope)?.has(group) === true;
  }

  /** Every group in scope and the first route using it. */
  *groups(): Iterable<[string, Claim]> {
    for (const [group, claims] of ledgers.get(this.#scope) ?? []) yield [group, claims[0] as Claim];
  }

  /** Whether `claim` is of another registration than this one. */
  isOthers(claim: Claim): boolean {
    return claim.owner !== this.#owner;
  }

  /** Forgets this registration's claims (its app closed, or its registration failed). */
  release(): void {
    this.#released = true;
    const groups = ledgers.get(this.#scope);
    if (groups === undefined) return;
    for (const [group, claims] of groups) {
      const left = claims.filter((c) => c.owner !== this.#owner);
      if (left.length === 0) groups.delete(group);
      else if (left.length !== claims.length) groups.set(group, left);
    }
    if (groups.size === 0) ledgers.delete(this.#scope);
  }
}

/**
 * The Redis server (or cluster, or sentinel set) a client talks to, as its options name it: registrations on two
 * servers share no key whatever their prefixes. Two spellings of one server (`localhost`, `127.0.0.1`) are two.
 */
function serverOf(redis: RedisClient): string {
  const r = redis as unknown as { options?: Record<string, unknown>; startupNodes?: unknown };
  if (isCluster(redis)) {
    const nodes = Array.isArray(r.startupNodes) ? r.startupNodes.map(nodeText).sort().join(",") : "?";
    return `cluster ${nodes}`;
  }
  const o = r.options ?? {};
  const db = `db ${String(o.db ?? 0)}`;
  if (Array.isArray(o.sentinels)) {
    return `sentinel ${String(o.name)} ${o.sentinels.map(nodeText).sort().join(",")} ${db}`;
  }
  if (typeof o.path === "string" && o.path !== "") return `unix ${o.path} ${db}`;
  return `${String(o.host ?? "localhost")}:${String(o.port ?? 6379)} ${db}`;
}

function nodeText(node: unknown): string {
  if (typeof node === "string" || typeof node === "number") return String(node);
  const n = node as { host?: unknown; port?: unknown } | null;
  return `${String(n?.host ?? "localhost")}:${String(n?.port ?? 6379)}`;
}
