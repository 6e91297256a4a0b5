import type { Redis } from "ioredis";
import { type CoreModule, coordisExports } from "../coordis.js";
import type { Scenario } from "../types.js";

/** A trivial INCR + PEXPIRE script: the raw EVALSHA floor (and the raw rate-limit counter). */
export const INCR_PEXPIRE_LUA = `local v = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v`;

/** Compare-and-delete: the raw lock release. */
export const COMPARE_DELETE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Keys a write scenario cycles through. */
export const KEY_SPACE = 10_000;

/** Loads a script, returning its SHA1 for EVALSHA. */
export async function loadScript(redis: Redis, source: string): Promise<string> {
  return (await redis.script("LOAD", source)) as string;
}

/** Raw ioredis floors: a plain SET and the EVALSHA of a trivial script, plus that EVALSHA with corked writes. */
export function rawFloors(): Scenario[] {
  return [
    {
      id: "floor/raw-set",
      group: "raw floor",
      name: "ioredis SET",
      kind: "raw",
      topology: "single",
      baseline: "floor/raw-evalsha",
      async setup(ctx) {
        const redis = ctx.client();
        return { op: (n) => redis.set(`${ctx.prefix}:k${n % KEY_SPACE}`, "v") };
      },
    },
    {
      id: "floor/raw-evalsha",
      group: "raw floor",
      name: "ioredis EVALSHA (INCR+PEXPIRE)",
      kind: "raw",
      topology: "single",
      async setup(ctx) {
        const redis = ctx.client();
        const sha = await loadScript(redis, INCR_PEXPIRE_LUA);
        return { op: (n) => redis.evalsha(sha, 1, `${ctx.prefix}:k${n % KEY_SPACE}`, 60_000) };
      },
    },
    {
      id: "floor/raw-evalsha-corked",
      group: "raw floor",
      name: "ioredis EVALSHA (INCR+PEXPIRE), writes corked per tick",
      kind: "raw",
      topology: "single",
      baseline: "floor/raw-evalsha",
      async setup(ctx) {
        // Coordis' own write coalescing (corkUntilTickEnd, the same call its scripts make) in front of plain EVALSHA.
        const { corkUntilTickEnd } = await coordisExports<CoreModule>("core", ["corkUntilTickEnd"]);
        const redis = ctx.client();
        const sha = await loadScript(redis, INCR_PEXPIRE_LUA);
        return {
          op: (n) => {
            corkUntilTickEnd(redis);
            return redis.evalsha(sha, 1, `${ctx.prefix}:k${n % KEY_SPACE}`, 60_000);
          },
        };
      },
    },
  ];
}
