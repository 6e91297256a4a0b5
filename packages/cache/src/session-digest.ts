import { createHash } from "node:crypto";

/**
 * The property through which a session read from the store carries a digest of its data as read (inherited, so it is
 * never part of the data; session middlewares copy it along with the data and hand it back to `set`).
 */
export const READ_DIGEST = "_coordisReadDigest";
/**
 * Records on a session object the digest of the data stored for it. Where the digest was copied onto the object (as
 * session middlewares do) it is overwritten there; where it is inherited from `get`, it is shadowed by an own,
 * non-enumerable property, so the object's enumerable data stays as it was.
 */
export function rememberDigest(session: object, digest: string): void {
  if (Object.hasOwn(session, READ_DIGEST)) Reflect.set(session, READ_DIGEST, digest);
  else Reflect.defineProperty(session, READ_DIGEST, { value: digest, writable: true, configurable: true });
}

/**
 * A deterministic text of a session's data for its digest, whatever the serializer: JSON, with Maps, Sets and BigInts
 * written out (JSON would write `{}` for any Map, hiding a change).
 */
function canonicalText(data: object): string {
  return JSON.stringify(data, (_key, value: unknown) => {
    if (value instanceof Map) return { "\u0000map": [...value] };
    if (value instanceof Set) return { "\u0000set": [...value] };
    if (typeof value === "bigint") return `${value}n`;
    return value;
  });
}

/**
 * Digests of sessions' data, to tell an unchanged save from a change: the data as the serializer writes it, with the
 * cookie's expiry left out (rolling sessions move it on every request; the key's TTL carries it), and the key it is
 * stored under (the same data read under one id and saved under another, as `regenerate` keeping every field does, is
 * a new session to write, not a renewal). A serializer that writes the same data two ways (encryption with a random
 * IV, a timestamp) is noticed at the first digest; the digest is then taken over {@link canonicalText} instead.
 * Internal.
 */
export class SessionDigests {
  readonly #encode: (data: object) => string;
  #unstable: boolean | undefined;

  constructor(encode: (data: object) => string) {
    this.#encode = encode;
  }

  /** The digest of `data` stored under `key`; `undefined` when it cannot be serialized. */
  of(key: string, data: Record<string, unknown>): string | undefined {
    const cookie = data.cookie;
    let copy: Record<string, unknown> = data;
    if (cookie !== null && typeof cookie === "object") {
      const c =
        typeof (cookie as { toJSON?: unknown }).toJSON === "function"
          ? (cookie as { toJSON(): object }).toJSON()
          : cookie;
      const { expires: _e, originalExpires: _o, maxAge: _m, _expires: _x, ...rest } = c as Record<string, unknown>;
      copy = { ...data, cookie: rest };
    }
    try {
      let text = this.#unstable === true ? canonicalText(copy) : this.#encode(copy);
      if (this.#unstable === undefined) {
        this.#unstable = this.#encode(copy) !== text;
        if (this.#unstable) text = canonicalText(copy);
      }
      return createHash("sha256").update(`${key.length}:${key}`).update(text).digest("base64");
    } catch {
      return undefined;
    }
  }
}
