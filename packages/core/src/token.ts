import { randomBytes } from "node:crypto";

/** Longest token {@link randomToken} hands out, in random bytes. */
export const MAX_TOKEN_BYTES = 64;

/** Random bytes fetched from the CSPRNG in one call and handed out a token at a time (each byte used once). */
const POOL_BYTES = 4096;
let pool = randomBytes(POOL_BYTES);
let offset = 0;

/**
 * A random token for Redis-side ownership checks (a lease, a fill lock, a publisher id): `bytes` random bytes from
 * the CSPRNG, base64url-encoded (16 bytes → 22 characters). Bytes come from a pooled buffer refilled every 4 KiB, so
 * a token costs no system call; no byte is ever handed out twice.
 * @param bytes random bytes, 8–64; default 16 (128 bits)
 */
export function randomToken(bytes = 16): string {
  if (!Number.isInteger(bytes) || bytes < 8 || bytes > MAX_TOKEN_BYTES) {
    throw new RangeError(`randomToken: bytes must be an integer 8-${MAX_TOKEN_BYTES}, got ${String(bytes)}`);
  }
  if (offset + bytes > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const start = offset;
  offset += bytes;
  return pool.toString("base64url", start, offset);
}
