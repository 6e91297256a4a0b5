import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { CoordisError, InvalidArgumentError, isUnavailableCause, RedisUnavailableError } from "@coordis/core";
import type { FastifyError, FastifyReply, FastifyRequest, FastifyServerOptions } from "fastify";
import fp from "fastify-plugin";

/** Media type of every error answer (RFC 9457). */
export const PROBLEM_TYPE = "application/problem+json";

/**
 * Answers with an RFC 9457 problem document `{ type, title, status, detail }` (plus `headers`). Every error answer of
 * the demo goes through here, from routes, hooks, the error and not-found handlers and the stream hub alike.
 */
export function problem(
  reply: FastifyReply,
  status: number,
  title: string,
  detail: string,
  headers: Record<string, string> = {},
): FastifyReply {
  for (const [name, value] of Object.entries(headers)) reply.header(name, value);
  return reply.code(status).type(PROBLEM_TYPE).send({ type: "about:blank", title, status, detail });
}

/**
 * Whether `error` means Redis did not answer: a Coordis `RedisUnavailableError`, or what ioredis rejects a plain
 * command or pipeline of the demo's own with when the connection is down or a command timed out (closed connection,
 * timeout, max retries: `isUnavailableCause`). An error with an HTTP status of its own is never one.
 */
function isRedisUnavailable(error: FastifyError): boolean {
  if (error instanceof RedisUnavailableError) return true;
  return !(error instanceof CoordisError) && error.statusCode === undefined && isUnavailableCause(error);
}

/**
 * The error handler: validation and bad arguments are 400, Redis being unavailable is 503 (whether a primitive or a
 * command of the demo's own found it so), other 4xx keep their status, and anything else is logged and answered as a
 * 500 that names at most a Coordis error code.
 */
function problemOfError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error.validation !== undefined) return problem(reply, 400, "Bad Request", error.message);
  if (error instanceof InvalidArgumentError) return problem(reply, 400, "Bad Request", error.message);
  if (isRedisUnavailable(error)) return problem(reply, 503, "Service Unavailable", "Redis is unavailable");
  const status = typeof error.statusCode === "number" ? error.statusCode : 500;
  if (status >= 400 && status < 500) return problem(reply, status, titleOf(status), error.message);
  request.log.error({ err: error }, "request failed");
  const code = error instanceof CoordisError ? ` (${error.code})` : "";
  return problem(reply, 500, "Internal Server Error", `Something went wrong${code}.`);
}

/** Router-level errors (malformed URL, over-long parameter), for Fastify's `frameworkErrors` option. */
export const frameworkErrors: NonNullable<FastifyServerOptions["frameworkErrors"]> = (error, _request, reply) => {
  const status = typeof error.statusCode === "number" ? error.statusCode : 400;
  problem(reply as FastifyReply, status, titleOf(status), error.message);
};

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (headers over its size limit, a malformed header line or
 * `Content-Length`, a request that timed out), for Fastify's `clientErrorHandler` option: a problem document like
 * every other error, where Fastify would write a JSON document of its own. The connection closes after it.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, detail] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "The request's headers are larger than this server accepts."]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "The request did not arrive in time."]
        : [400, "The request is not valid HTTP/1.1 (a malformed request line, header or Content-Length)."];
  const title = titleOf(status);
  const body = JSON.stringify({ type: "about:blank", title, status, detail });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** The title of a status: its HTTP reason phrase ("Payload Too Large", "Unsupported Media Type"...). */
function titleOf(status: number): string {
  return STATUS_CODES[status] ?? (status < 500 ? "Client Error" : "Server Error");
}

/** Installs the error and not-found handlers on the root instance, so every route answers errors as problems. */
export const problems = fp(
  async (app) => {
    app.setErrorHandler(problemOfError);
    app.setNotFoundHandler((request, reply) =>
      problem(reply, 404, "Not Found", `No route ${request.method} ${request.url}`),
    );
  },
  { name: "demo-problems" },
);
