import { isIPv4, isIPv6 } from "node:net";

/**
 * The default rate-limit key of a client address (`request.ip`): an IPv4 address as it is; an IPv6 address by its
 * /64 network, `2001:db8:1:2::/64` (one host, or one customer's link, has a whole /64 to pick addresses from: keyed
 * by full address, a client would get a new budget per address); an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`,
 * a dual-stack socket's view of an IPv4 client) as the IPv4 address. As @fastify/rate-limit 11 keys by default.
 */
export function addressKey(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const zone = ip.indexOf("%");
  const groups = hextets(zone < 0 ? ip : ip.slice(0, zone));
  if (groups === undefined) return ip;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi, lo] = [groups[6] as number, groups[7] as number];
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":")}::/64`;
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
