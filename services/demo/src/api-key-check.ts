import { addressKey } from "@coordis/fastify";
import type { FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { type ApiKeys, isWellFormedApiKey } from "./apikeys.js";
import { problem } from "./problem.js";

/**
 * The API key of each request, verified once. API keys are `<id>.<signature>`, signed with a secret every replica
 * shares (see apikeys.ts). A request is budgeted by its key's id only when the key verifies; without a key, by the
 * client address. The keys arrive after the Fastify plugin (their secret may live in its Redis), so the limiter's
 * key function is handed over before they exist.
 */
export class RequestKeys {
  #keys: ApiKeys | undefined;
  readonly #verified = new WeakMap<FastifyRequest, string | null>();

  /** Verifies keys with `keys` from now on. */
  verifyWith(keys: ApiKeys): void {
    this.#keys = keys;
  }

  /** The id of the request's `x-api-key` when it verifies, else null. */
  idOf(request: FastifyRequest): string | null {
    let id = this.#verified.get(request);
    if (id === undefined) {
      const header = request.headers["x-api-key"];
      id = typeof header === "string" && this.#keys !== undefined ? (this.#keys.verify(header) ?? null) : null;
      this.#verified.set(request, id);
    }
    return id;
  }

  /** The budget a request spends (the limiter's key function): `key:<id>` for a verified key, else `ip:<address>` (an IPv6
   * address by its /64, see addressKey). */
  readonly budgetOf = (request: FastifyRequest): string => {
    const id = this.idOf(request);
    return id === null ? `ip:${addressKey(request.ip)}` : `key:${id}`;
  };
}

/**
 * Every route, limited or not: a present `x-api-key` must be well formed (else 400) and verify (else 401), checked
 * in a root `onRequest` hook. Instance hooks run before the route-level hook of the limiter, so rotating or borrowing
 * key strings never yields a budget, and a bad key never spends one.
 */
export const apiKeyCheck = fp<{ requestKeys: RequestKeys }>(
  async (app, { requestKeys }) => {
    app.addHook("onRequest", async (request, reply) => {
      const header = request.headers["x-api-key"];
      if (header === undefined) return;
      if (typeof header !== "string" || !isWellFormedApiKey(header)) {
        return problem(
          reply,
          400,
          "Bad Request",
          "x-api-key must be an issued API key: <id>.<43 base64url characters>",
        );
      }
      if (requestKeys.idOf(request) === null) {
        return problem(reply, 401, "Unauthorized", "x-api-key is not a key this service issued.", {
          "www-authenticate": 'ApiKey realm="coordis-demo"',
        });
      }
    });
  },
  { name: "demo-api-key-check" },
);
