import type { OperationEvent } from "@coordis/core";
import type { RedisSessionStore, SessionData } from "../src/index.js";

/** `{tier}/{result}` of every cache `get` operation recorded. */
export function tiers(rec: { ops: OperationEvent[] }): string[] {
  return rec.ops
    .filter((o) => o.primitive === "cache" && o.op === "get")
    .map((o) => `${o.attributes?.tier}/${o.attributes?.result}`);
}

/** Promise wrappers over a session store's callback API. */
export function sessionApi(store: RedisSessionStore) {
  return {
    get: (id: string) =>
      new Promise<SessionData | null | undefined>((resolve, reject) =>
        store.get(id, (err, s) => (err ? reject(err) : resolve(s))),
      ),
    set: (id: string, s: SessionData) =>
      new Promise<void>((resolve, reject) => store.set(id, s, (err) => (err ? reject(err) : resolve()))),
    touch: (id: string, s: SessionData) =>
      new Promise<void>((resolve, reject) => store.touch(id, s, (err) => (err ? reject(err) : resolve()))),
    destroy: (id: string) =>
      new Promise<void>((resolve, reject) => store.destroy(id, (err) => (err ? reject(err) : resolve()))),
  };
}
