import { connect, InvalidArgumentError, parseRedisUrl } from "@coordis/core";
import { type RedisServer, startRedis } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** The InvalidArgumentError (argument "url") `parse` throws for `url`. */
function urlError(parse: (url: string) => unknown, url: string): InvalidArgumentError {
  try {
    parse(url);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe("url");
    return err as InvalidArgumentError;
  }
  throw new Error(`${JSON.stringify(url)} was accepted`);
}

describe("URL values Redis or the resolver would refuse later are refused at once", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a client_name Redis refuses (a space, a non-ASCII letter) is an error naming it, not an unnamed client", () => {
    // Redis answers CLIENT SETNAME with an error for these, which ioredis drops: the connection went unnamed.
    for (const name of ["my%20app", "my+app", "caf%C3%A9", "a%0Ab"]) {
      const err = urlError((u) => connect(u), `${server.url}/?client_name=${name}`);
      expect(err.message).toContain("client_name");
    }
  });

  it("a query parameter given twice is refused, not read as its last value", () => {
    for (const query of ["command_timeout_ms=100&command_timeout_ms=5000", "client_name=a&client_name=b"]) {
      const err = urlError((u) => parseRedisUrl(u), `redis://localhost:6380/?${query}`);
      expect(err.message).toContain("twice");
    }
  });

  it("a client_name Redis accepts names the connection", async () => {
    const redis = connect(`${server.url}/?client_name=api-1.worker_2`);
    try {
      expect(await redis.client("GETNAME")).toBe("api-1.worker_2");
    } finally {
      redis.disconnect();
    }
  });

  it("a host with whitespace or a control character (a value read from a file with its newline) is refused", () => {
    for (const url of [
      "redis://localhost\n",
      "redis://localhost :6379",
      "redis://local\thost",
      "redis+cluster://a:1, b:2",
    ]) {
      const err = urlError(parseRedisUrl, url);
      expect(err.message).toMatch(/host/);
    }
  });
});
