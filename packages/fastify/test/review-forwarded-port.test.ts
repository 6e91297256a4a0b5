import { addressKey, coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import Fastify from "fastify";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("fastify-forwarded-port");
const clients = sharedClients();
let n = 0;

/** Status codes of requests through a trusted proxy (127.0.0.1, inject's address) forwarding `forwarded` in turn. */
async function codesVia(forwarded: string[], allowList?: string[]): Promise<number[]> {
  const app = Fastify({ trustProxy: ["127.0.0.1"] });
  await app.register(coordis, {
    redis: clients.redis,
    prefix: `${prefix}-${n++}`,
    rateLimit: { rules: [{ name: "m", limit: 1, windowMs: 60_000 }], ...(allowList ? { allowList } : {}) },
  });
  app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
  try {
    const out: number[] = [];
    for (const xff of forwarded) {
      out.push((await app.inject({ url: "/x", headers: { "x-forwarded-for": xff } })).statusCode);
    }
    return out;
  } finally {
    await app.close();
  }
}

describe("a proxy that forwards the client's address with its port", () => {
  // Some proxies (Azure Application Gateway, for one) write `address:port` into X-Forwarded-For, and Fastify's req.ip
  // is then that text: keyed as it is, a client would get a new budget with every connection (a new source port).
  it("keys an IPv4 client by its address, whatever its source port", async () => {
    expect(await codesVia(["203.0.113.7:50001", "203.0.113.7:50002", "203.0.113.7", "203.0.113.8:50001"])).toEqual([
      200, 429, 429, 200,
    ]);
  });

  it("keys a bracketed IPv6 client, with or without a port, by its /64", async () => {
    expect(
      await codesVia(["[2001:db8:1:2::1]:443", "[2001:db8:1:2::9]:444", "2001:db8:1:2::3", "[2001:db8:1:3::1]"]),
    ).toEqual([200, 429, 429, 200]);
  });

  it("reads addresses of the allow list and addressKey() alike", async () => {
    expect(await codesVia(["192.0.2.1:1", "192.0.2.1:1", "192.0.2.1"], ["192.0.2.1:9"])).toEqual([200, 200, 200]);
    expect(addressKey("198.51.100.4:8080")).toBe("198.51.100.4");
    expect(addressKey("[2001:db8:1:2::1]:8080")).toBe("2001:db8:1:2::/64");
    expect(addressKey("[::ffff:198.51.100.4]")).toBe("198.51.100.4");
    // Not an address with a port: kept as it is.
    expect(addressKey("198.51.100.4:99999")).toBe("198.51.100.4:99999");
    expect(addressKey("[not-an-address]:1")).toBe("[not-an-address]:1");
  });
});
