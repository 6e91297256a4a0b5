import type { FastifyReply } from "fastify";

/** Body of a 429, 403, 500 or 503 answer (RFC 9457 problem details). */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
}

const PROBLEM_TYPE = "application/problem+json";

/**
 * Answers the request with problem details, serialized here: sent as an object, they would go through the route's
 * response schema for that status (a `4xx` or `default` schema of the app's own error shape), which strips their
 * fields or fails on the ones it requires.
 */
export function problem(reply: FastifyReply, status: number, title: string, detail: string): FastifyReply {
  const body: ProblemDetails = { type: "about:blank", title, status, detail };
  return reply.code(status).type(PROBLEM_TYPE).send(JSON.stringify(body));
}
