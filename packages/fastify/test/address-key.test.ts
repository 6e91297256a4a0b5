import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { addressKey, coordis, type RateLimitKeyFn } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it, inject as provided } from "vitest";

const url = provided("coordisRedisUrl");
const prefix = testPrefix("fastify-address-key");
const rules = [{ name: "m", limit: 2, windowMs: 60_000 }];

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

let n = 0;
/** The status codes of requests from `addresses`, in turn, to a route keyed by `key`. */
async function codesFrom(key: RateLimitKeyFn, addresses: string[]): Promise<number[]> {
  const app = Fastify();
  await app.register(coordis, { redis: shared, prefix: `${prefix}-${n++}`, rateLimit: { rules, key } });
  app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
  try {
    const out: number[] = [];
    for (const remoteAddress of addresses) {
      out.push((await app.inject({ method: "GET", url: "/x", remoteAddress })).statusCode);
    }
    return out;
  } finally {
    await app.close();
  }
}

describe("addressKey, the default key's reading of a client address, for key functions of the app's own", () => {
  it("a key function keying by addressKey(req.ip) keeps one IPv6 client, whatever address of its /64, in one budget", async () => {
    const oneHost = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"];
    expect(await codesFrom((req) => `ip:${addressKey(req.ip)}`, [...oneHost, "2001:db8:1:3::1"])).toEqual([
      200, 200, 429, 200,
    ]);
    // What req.ip as it is would do: a new budget for every address the client picks.
    expect(await codesFrom((req) => `ip:${req.ip}`, oneHost)).toEqual([200, 200, 200]);
    // Another prefix length (@fastify/rate-limit's ipv6Subnet): a /48 is one client.
    expect(
      await codesFrom((req) => addressKey(req.ip, 48), ["2001:db8:1:2::1", "2001:db8:1:ff::1", "2001:db8:1:3::1"]),
    ).toEqual([200, 200, 429]);
  });

  it("with the default key, allowList addresses are read as the key reads clients': an IPv6 one allows its /64", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: shared,
      prefix: `${prefix}-${n++}`,
      rateLimit: { rules: [{ name: "m", limit: 1, windowMs: 60_000 }], allowList: ["2001:db8::5", "::ffff:192.0.2.9"] },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    try {
      const from = async (remoteAddress: string) =>
        (await app.inject({ method: "GET", url: "/x", remoteAddress })).statusCode;
      const seen = [];
      for (const ip of ["2001:db8::5", "2001:db8::5", "2001:db8::6", "192.0.2.9", "192.0.2.9"])
        seen.push(await from(ip));
      expect(seen).toEqual([200, 200, 200, 200, 200]);
      // Not listed: limited.
      expect([await from("2001:db8:0:1::5"), await from("2001:db8:0:1::5")]).toEqual([200, 429]);
    } finally {
      await app.close();
    }
  });

  it("reads addresses as the default key does, and refuses what is no address or prefix length", () => {
    expect(addressKey("192.0.2.7")).toBe("192.0.2.7");
    expect(addressKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(addressKey("::ffff:c000:207", 48)).toBe("192.0.2.7");
    expect(addressKey("2001:DB8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8:1:2:3:4:5:6", 56)).toBe("2001:db8:1:0::/56");
    expect(addressKey("2001:db8:1:2ff:3:4:5:6", 56)).toBe("2001:db8:1:200::/56");
    expect(addressKey("2001:db8:1:2:3:4:5:6", 128)).toBe("2001:db8:1:2:3:4:5:6/128");
    expect(addressKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    for (const [ip, ipv6Prefix, argument] of [
      [undefined, 64, "ip"],
      [7, 64, "ip"],
      ["::1", 129, "ipv6Prefix"],
      ["::1", -1, "ipv6Prefix"],
      ["::1", 56.5, "ipv6Prefix"],
      ["::1", "56", "ipv6Prefix"],
    ] as const) {
      let err: unknown;
      try {
        addressKey(ip as unknown as string, ipv6Prefix as unknown as number);
      } catch (e) {
        err = e;
      }
      expect(err, `${String(ip)} /${String(ipv6Prefix)}`).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(argument);
    }
  });
});
