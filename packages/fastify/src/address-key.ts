import { isIPv4, isIPv6 } from "node:net";
import { InvalidArgumentError, validate } from "@coordis/core";

/**
 * The rate-limit key of a client address (`request.ip`), the plugin's default key: an IPv4 address as it is; an IPv6
 * address by its /64 network, `2001:db8:1:2::/64` (one host, or one customer's link, has a whole /64 to pick
 * addresses from: keyed by full address, a client would get a new budget per address); an IPv4-mapped IPv6 address
 * (`::ffff:192.0.2.1`, a dual-stack socket's view of an IPv4 client) as the IPv4 address. As @fastify/rate-limit 11
 * keys by default. An address with a port (`192.0.2.1:51234`, `[2001:db8::1]:443`, as some proxies forward it) is
 * read without it. Call it in a key function of your own that keys by address (`ip:${addressKey(req.ip)}`), never
 * `req.ip` as it is.
 * @param ipv6Prefix the prefix length IPv6 addresses are grouped by, 0 to 128 (default 64; @fastify/rate-limit's
 *   `ipv6Subnet`): `2001:db8:1::/48` for 48, the whole address for 128
 * @throws InvalidArgumentError when `ip` is no string or `ipv6Prefix` no integer from 0 to 128
 */
export function addressKey(ip: string, ipv6Prefix = 64): string {
  if (typeof ip !== "string") {
    throw new InvalidArgumentError("ip", `expected a client address (request.ip), got ${validate.describeValue(ip)}`);
  }
  const bits = ipv6Prefix === 64 ? 64 : validate.integer("ipv6Prefix", ipv6Prefix, { min: 0, max: 128 });
  if (!isIPv6(ip)) return isIPv4(ip) ? ip : withoutPort(ip, bits);
  const zone = ip.indexOf("%");
  const groups = hextets(zone < 0 ? ip : ip.slice(0, zone));
  if (groups === undefined) return ip;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi, lo] = [groups[6] as number, groups[7] as number];
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  // The groups the network spans (the last one masked): always as many for one prefix length, so two networks never
  // read alike.
  const kept = groups.slice(0, Math.ceil(bits / 16));
  const partial = bits % 16;
  if (partial !== 0) kept[kept.length - 1] = (kept[kept.length - 1] as number) & (0xffff << (16 - partial)) & 0xffff;
  const text = kept.map((g) => g.toString(16)).join(":");
  return `${text}${kept.length < 8 ? "::" : ""}/${bits}`;
}

/** `<IPv4>:<port>`, and `[<IPv6>]` with or without `:<port>`, as some proxies write an address in X-Forwarded-For. */
const IPV4_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/;
const IPV6_BRACKETED = /^\[([^\]]+)\](?::(\d{1,5}))?$/;

/**
 * An address written with a port (or an IPv6 one in brackets) read without it: the port changes with every
 * connection, so keyed with it a client would get a new budget per connection. Anything else is kept as it is.
 */
function withoutPort(text: string, bits: number): string {
  const v4 = IPV4_PORT.exec(text);
  if (v4 !== null) return isIPv4(v4[1] as string) && Number(v4[2]) <= 65_535 ? (v4[1] as string) : text;
  const v6 = IPV6_BRACKETED.exec(text);
  if (v6 === null || !isIPv6(v6[1] as string) || Number(v6[2] ?? 0) > 65_535) return text;
  return addressKey(v6[1] as string, bits);
}

/** The 8 groups of a valid IPv6 address (no zone), `::` and a dotted IPv4 tail expanded. */
function hextets(address: string): number[] | undefined {
  const parse = (part: string): number[] => {
    if (part === "") return [];
    const out: number[] = [];
    for (const piece of part.split(":")) {
      if (isIPv4(piece)) {
        const [a, b, c, d] = piece.split(".").map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else {
        out.push(Number.parseInt(piece, 16));
      }
    }
    return out;
  };
  const gap = address.indexOf("::");
  const head = parse(gap < 0 ? address : address.slice(0, gap));
  const tail = gap < 0 ? [] : parse(address.slice(gap + 2));
  const zeros = 8 - head.length - tail.length;
  if (zeros < 0 || (gap < 0 && zeros !== 0)) return undefined;
  return [...head, ...new Array<number>(zeros).fill(0), ...tail];
}
