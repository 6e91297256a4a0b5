import type { FastifyReply } from "fastify";

/** Body of a 429, 403, 500 or 503 answer (RFC 9457 problem details). */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
}

const PROBLEM_TYPE = "application/problem+json";

/** Answers the request with problem details. */
export function problem(reply: FastifyReply, status: number, title: string, detail: string): FastifyReply {
  const body: ProblemDetails = { type: "about:blank", title, status, detail };
  return reply.code(status).type(PROBLEM_TYPE).send(body);
}
