import { connect, InvalidArgumentError, parseRedisUrl } from "@coordis/core";
import { describe, expect, it } from "vitest";

/** The error `parse` throws for `url`, which must be an InvalidArgumentError naming "url". */
function errorOf(parse: (url: string) => unknown, url: string): InvalidArgumentError {
  try {
    parse(url);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe("url");
    return err as InvalidArgumentError;
  }
  throw new Error(`${url} was accepted`);
}

describe("URL errors never quote the password", () => {
  // A password with a character it should have percent-encoded (/ ? # @), or a URL the parser refuses whole (an
  // upper-case scheme): the error used to quote the URL, or the part of the password read as the host, the path or
  // a query parameter, so it ended up in the application's logs.
  const cases = [
    "redis_tls://app:Pw-s3cr3t@10.0.0.5:6379",
    "redis://app:Pw-s3cr/3t@10.0.0.5:6379",
    "redis://app:Pw-s3cr?3t@10.0.0.5:6379",
    "redis://:Pw-s3cr/3t@10.0.0.5:6379/0",
    "redis://:Pw-s3cr/3t@10.0.0.5",
    "redis+sentinel://app:Pw-s3cr/3t@10.0.0.5:26379/mymaster",
  ];
  for (const url of cases) {
    it(`case ${cases.indexOf(url) + 1} (${url.slice(0, url.indexOf(":"))}): the error keeps the password out`, () => {
      for (const parse of [parseRedisUrl, (u: string) => connect(u)]) {
        const err = errorOf(parse, url);
        expect(err.message).not.toMatch(/s3cr|3t@/);
        expect(err.message).not.toContain("Pw-");
      }
    });
  }

  it("errors about URLs without credentials still quote what is wrong", () => {
    expect(errorOf(parseRedisUrl, "redis_tls://10.0.0.5:6379").message).toContain('"redis_tls://10.0.0.5:6379"');
    expect(errorOf(parseRedisUrl, "redis://10.0.0.5:99999").message).toContain('"10.0.0.5:99999"');
    expect(errorOf(parseRedisUrl, "redis://10.0.0.5/abc").message).toContain('"abc"');
    expect(errorOf(parseRedisUrl, "redis://:pw@10.0.0.5:6379?foo=1").message).toContain('"foo"');
  });

  it("a password with an unencoded @ is the password, not part of the host", () => {
    const parsed = parseRedisUrl("redis://:SeC@rEt@127.0.0.1:6390");
    expect(parsed.hosts).toEqual([{ host: "127.0.0.1", port: 6390 }]);
    expect(parsed.password).toBe("SeC@rEt");
    expect(parseRedisUrl("redis://app:a@b@c@10.0.0.5/2")).toMatchObject({ username: "app", password: "a@b@c", db: 2 });
  });
});
