import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { entityKeys, type RedisClient } from "@coordis/core";

/** An API key id: 1–32 characters of letters, digits, `_`, `-` (the public half of a key). */
export const API_KEY_ID_PATTERN = "^[A-Za-z0-9_-]{1,32}$";
/** An API key as clients send it in `x-api-key`: `<id>.<signature>` (43 base64url characters of HMAC-SHA256). */
export const API_KEY_PATTERN = "^[A-Za-z0-9_-]{1,32}\\.[A-Za-z0-9_-]{43}$";
/** Longest well-formed `x-api-key` value. */
export const API_KEY_MAX_LENGTH = 32 + 1 + 43;

const ID = new RegExp(API_KEY_ID_PATTERN);
const KEY = new RegExp(API_KEY_PATTERN);
const CONTEXT = "coordis-demo:api-key:v1:";

/** Whether `value` has the shape of an API key (length and charset only; says nothing about its signature). */
export function isWellFormedApiKey(value: string): boolean {
  return value.length <= API_KEY_MAX_LENGTH && KEY.test(value);
}

/**
 * Issues and verifies the demo's API keys. A key is `<id>.<signature>`, the signature being HMAC-SHA256 of the id
 * under a server secret every replica shares. Verifying recomputes it and compares in constant time: no lookup, and
 * nobody without the secret can make a key that verifies, so a client cannot mint itself fresh budgets.
 */
export class ApiKeys {
  #secret: Buffer;

  constructor(secret: string) {
    this.#secret = ApiKeys.#check(secret);
  }

  /** The secret keys are signed with. */
  get secret(): string {
    return this.#secret.toString("utf8");
  }

  /** Signs and verifies with `secret` from now on (the shared secret changed: see {@link keepApiKeySecret}). */
  useSecret(secret: string): void {
    this.#secret = ApiKeys.#check(secret);
  }

  static #check(secret: string): Buffer {
    if (Buffer.byteLength(secret, "utf8") < 16) throw new Error("the API key secret must have at least 16 bytes");
    return Buffer.from(secret, "utf8");
  }

  /** The key of `id` (default a random id). */
  issue(id: string = `k${randomBytes(12).toString("base64url")}`): string {
    if (!ID.test(id)) throw new Error(`API key ids match ${API_KEY_ID_PATTERN}`);
    return `${id}.${this.#sign(id).toString("base64url")}`;
  }

  /** The id of `key` when it is a key this secret issued, else undefined. */
  verify(key: string): string | undefined {
    if (!isWellFormedApiKey(key)) return undefined;
    const dot = key.indexOf(".");
    const id = key.slice(0, dot);
    // The signature's text is compared, not its decoded bytes: base64url's last character carries 2 bits that decode
    // to nothing, so 4 different texts decode to one signature, and a tampered key could pass.
    const given = Buffer.from(key.slice(dot + 1), "latin1");
    const expected = Buffer.from(this.#sign(id).toString("base64url"), "latin1");
    return given.length === expected.length && timingSafeEqual(given, expected) ? id : undefined;
  }

  /**
   * The dashboard key of a client address: the same address always gets the same key, so loading the dashboard again
   * never yields a fresh budget, and a visitor cannot learn another address' key.
   */
  forAddress(address: string): string {
    const digest = createHmac("sha256", this.#secret).update(`${CONTEXT}web:${address}`).digest("base64url");
    return this.issue(`web-${digest.slice(0, 16)}`);
  }

  #sign(id: string): Buffer {
    return createHmac("sha256", this.#secret).update(`${CONTEXT}${id}`).digest();
  }
}

/**
 * The key secret: `API_KEY_SECRET` when set, else one random secret created in Redis by the first replica that
 * starts (SET NX) and read by every other one, so replicas agree without configuration.
 */
export async function loadApiKeySecret(
  configured: string | undefined,
  redis: RedisClient,
  prefix: string,
): Promise<string> {
  if (configured !== undefined) return configured;
  const key = entityKeys(prefix, "apikeys", "secret").base;
  await redis.set(key, randomBytes(32).toString("base64url"), "NX");
  const secret = await redis.get(key);
  if (secret === null) throw new Error(`the API key secret at ${key} vanished`);
  return secret;
}

/**
 * Keeps this replica's secret the one every replica shares once Redis lost it (a restart without persistence, a
 * FLUSHALL): every `intervalMs`, and whenever the client (re)connects, it writes its secret back if the key is gone
 * (SET NX) and adopts the one found otherwise. Without this, a replica started after the loss wrote a new secret while
 * the running ones kept the old: keys issued on one replica got 401 on the others, for good. A change is logged (keys
 * issued under the other secret no longer verify). Returns the function that stops it. Not used with API_KEY_SECRET.
 */
export function keepApiKeySecret(
  keys: ApiKeys,
  redis: RedisClient,
  prefix: string,
  warn: (message: string) => void,
  intervalMs = 5_000,
): () => void {
  const key = entityKeys(prefix, "apikeys", "secret").base;
  let checking = false;
  const check = async () => {
    if (checking) return;
    checking = true;
    try {
      const shared = (await redis.call("SET", key, keys.secret, "NX", "GET")) as string | null;
      if (shared !== null && shared !== keys.secret) {
        keys.useSecret(shared);
        warn(
          "the shared API key secret in Redis was replaced (Redis lost it): now using it; keys issued before do not verify",
        );
      }
    } catch {
      // Redis unreachable: the next check tries again.
    } finally {
      checking = false;
    }
  };
  const onReady = () => void check();
  redis.on("ready", onReady);
  const timer = setInterval(onReady, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    redis.off("ready", onReady);
  };
}
