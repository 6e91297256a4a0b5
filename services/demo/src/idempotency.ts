import { createHash, randomUUID } from "node:crypto";
import { defineScript, entityKeys, type RedisClient, runScript } from "@coordis/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import { problem } from "./problem.js";

/** How long a finished request's answer is kept for replays: 24 hours. */
export const IDEMPOTENCY_TTL_MS = 86_400_000;
/**
 * How long a request in progress holds its key: 30 s. A replica killed mid-request leaves its marker behind; when it
 * expires, a retry with the key runs the request again.
 */
export const IDEMPOTENCY_PENDING_MS = 30_000;
/** `Retry-After` (seconds) of the 409 a retry gets while the first request with its key is still running. */
const RETRY_AFTER_S = 1;
/** The header a replayed answer carries. */
export const REPLAYED_HEADER = "idempotency-replayed";
/**
 * An `Idempotency-Key`: 1–255 printable ASCII characters, spaces only inside (HTTP trims a header value's ends, so a
 * key could not arrive with them).
 */
export const IDEMPOTENCY_KEY_PATTERN = "^[\\x21-\\x7e](?:[\\x20-\\x7e]{0,253}[\\x21-\\x7e])?$";

const KEY_PATTERN = new RegExp(IDEMPOTENCY_KEY_PATTERN);

/**
 * A route's `preValidation` hook: a present `Idempotency-Key` that is not 1–255 printable ASCII characters (spaces
 * only inside) is a 400 saying so, before the schema's check would answer with its bare pattern.
 */
export async function checkIdempotencyKey(
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply | undefined> {
  const key = request.headers["idempotency-key"];
  // Two header lines would reach us joined into one value ("a, b"): the field is one key, so that is refused too.
  const raw = request.raw.rawHeaders;
  let lines = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === "idempotency-key") lines++;
  if (key === undefined || (typeof key === "string" && lines <= 1 && KEY_PATTERN.test(key))) return undefined;
  return problem(
    reply,
    400,
    "Bad Request",
    "Idempotency-Key must be one header of 1–255 printable ASCII characters (spaces only inside), e.g. a UUID; send a new key per submission.",
  );
}

/** What a handler answers: its status (2xx or 4xx to be kept), its JSON body and its media type. */
export interface Answer {
  status: number;
  body: unknown;
  /** Default `application/json; charset=utf-8`. */
  type?: string;
}

/**
 * Claims the key when it is free (a pending record of the request's fingerprint and the claim's token, expiring after
 * the pending time); otherwise reports what holds it: the same request still running (with the milliseconds its
 * marker has left), the same request finished (its answer), or another request.
 */
const BEGIN = defineIdempotencyScript<["fingerprint", "token", "pendingMs"], (string | number)[]>(
  "idempotency-begin",
  ["fingerprint", "token", "pendingMs"],
  `local r = redis.call("HMGET", KEYS[1], "state", "fp", "status", "type", "body")
if not r[1] then
  redis.call("HSET", KEYS[1], "state", "pending", "fp", ARGV[1], "token", ARGV[2])
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
  return {"claimed"}
end
if r[2] ~= ARGV[1] then return {"mismatch"} end
if r[1] == "pending" then return {"pending", redis.call("PTTL", KEYS[1])} end
return {"done", r[3], r[4], r[5]}`,
);

/**
 * Replaces the claim's pending record by the answer, kept for the answer time: 1. When another claim holds the key
 * now (this one's marker expired and a retry claimed it), it is left alone: 0. A record gone with its expired marker
 * is written again (no other request ran meanwhile).
 */
const COMPLETE = defineIdempotencyScript<["token", "fingerprint", "status", "type", "body", "ttlMs"], number>(
  "idempotency-complete",
  ["token", "fingerprint", "status", "type", "body", "ttlMs"],
  `local t = redis.call("HGET", KEYS[1], "token")
if t and t ~= ARGV[1] then return 0 end
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], "state", "done", "fp", ARGV[2], "token", ARGV[1], "status", ARGV[3], "type", ARGV[4], "body", ARGV[5])
redis.call("PEXPIRE", KEYS[1], ARGV[6])
return 1`,
);

/** Deletes the claim's pending record (its request failed: a retry may run it again at once): 1, else 0. */
const RELEASE = defineIdempotencyScript<["token"], number>(
  "idempotency-release",
  ["token"],
  `local r = redis.call("HMGET", KEYS[1], "state", "token")
if r[1] == "pending" and r[2] == ARGV[1] then redis.call("DEL", KEYS[1]) return 1 end
return 0`,
);

function defineIdempotencyScript<A extends readonly string[], R>(name: string, args: A, source: string) {
  return defineScript<["record"], A, R>({
    name: `demo/${name}`,
    keys: ["record"],
    args,
    source,
    sha1: createHash("sha1").update(source).digest("hex"),
  });
}

/** JSON with every object's keys sorted: the same body whatever order or spacing its client wrote it in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

const JSON_TYPE = "application/json; charset=utf-8";

/**
 * `Idempotency-Key` support of a route, on one Redis hash per key and scope (`<prefix>:idempotency:{<scope>:<sha-256
 * of the key>}`), changed only by one script per step: claim, store the answer, release. A scope is the budget of the
 * request (an API key's id, else the client address), so one client can neither replay nor block another's keys.
 */
export class Idempotency {
  readonly #redis: RedisClient;
  readonly #prefix: string;

  constructor(redis: RedisClient, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  /**
   * Answers `request` through `run` once per key: the first request with `key` in `scope` runs and, when it answers
   * 2xx or 4xx, its answer is kept for {@link IDEMPOTENCY_TTL_MS}; a retry with the same key and the same method, path
   * and body (key order and spacing aside) gets that answer again with `Idempotency-Replayed: true`, a retry while it
   * runs a 409 (`Retry-After`), and the key with another request a 422. A failure of `run` (thrown, a 5xx) keeps
   * nothing and frees the key.
   */
  async handle(
    request: FastifyRequest,
    reply: FastifyReply,
    scope: string,
    key: string,
    run: () => Promise<Answer>,
  ): Promise<FastifyReply> {
    const record = entityKeys(
      this.#prefix,
      "idempotency",
      `${scope}:${createHash("sha256").update(key).digest("hex")}`,
    ).base;
    const path = request.routeOptions.url ?? request.url;
    const fingerprint = createHash("sha256")
      .update(`${request.method} ${path}\n${canonicalJson(request.body)}`)
      .digest("hex");
    const token = randomUUID();
    const [state, status, type, body] = await runScript(
      this.#redis,
      BEGIN,
      [record],
      [fingerprint, token, IDEMPOTENCY_PENDING_MS],
    );
    if (state === "mismatch") {
      return problem(
        reply,
        422,
        "Unprocessable Entity",
        "This Idempotency-Key was already used for another request (a different body or route): send a new key for a new request.",
      );
    }
    if (state === "pending") {
      return problem(
        reply,
        409,
        "Conflict",
        "A request with this Idempotency-Key is still in progress: retry after it answered.",
        { "retry-after": String(RETRY_AFTER_S) },
      );
    }
    if (state === "done") {
      return reply.code(Number(status)).type(String(type)).header(REPLAYED_HEADER, "true").send(String(body));
    }

    let answer: Answer;
    try {
      answer = await run();
    } catch (error) {
      await this.#release(request, record, token);
      throw error;
    }
    const text = JSON.stringify(answer.body);
    const media = answer.type ?? JSON_TYPE;
    if (answer.status >= 500) {
      await this.#release(request, record, token);
    } else {
      try {
        await runScript(
          this.#redis,
          COMPLETE,
          [record],
          [token, fingerprint, answer.status, media, text, IDEMPOTENCY_TTL_MS],
        );
      } catch (error) {
        // The request's work is done: its client gets its answer; a retry after the marker expired runs it again.
        request.log.warn({ err: error }, "idempotency: the answer could not be stored");
      }
    }
    return reply.code(answer.status).type(media).send(text);
  }

  /** Frees the key of a request that failed, so a retry may run it at once (its marker expires anyway). */
  async #release(request: FastifyRequest, record: string, token: string): Promise<void> {
    try {
      await runScript(this.#redis, RELEASE, [record], [token]);
    } catch (error) {
      request.log.warn({ err: error }, "idempotency: the key could not be released (its marker expires)");
    }
  }
}
