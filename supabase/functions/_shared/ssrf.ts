// SSRF guard for outbound requests to URLs that customers chose (webhook endpoints): the host is resolved and every
// address it resolves to must be public. Loopback, private, link-local, carrier-grade NAT, multicast, reserved and
// documentation ranges are refused (IPv4, IPv6, and IPv4 embedded in IPv6), unless the caller allows private targets
// (local development and tests only). Pure apart from the resolver it is given, so Node (vitest) and Deno share it.
//
// A resolver that answers differently between this check and the connection (DNS rebinding) is not covered here; the
// dispatcher keeps the window small by checking right before each request.
import { isIP } from "node:net";

export type AddressLookup = (hostname: string) => Promise<readonly string[]>;

export class RefusedAddressError extends Error {
  readonly address: string;

  constructor(hostname: string, address: string) {
    super(`${hostname} resolves to ${address}, a non-public address`);
    this.name = "RefusedAddressError";
    this.address = address;
  }
}

type Range = readonly [prefix: bigint, bits: number];

function v4ToBigInt(address: string): bigint {
  return address.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6ToBigInt(address: string): bigint {
  let text = address.toLowerCase();
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  // A trailing dotted IPv4 part (::ffff:10.0.0.1) becomes two hextets.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const v4 = v4ToBigInt(dotted[1]);
    text = text.slice(0, -dotted[1].length) + `${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const headParts = head ? head.split(":") : [];
  const tailParts = tail === undefined ? [] : tail ? tail.split(":") : [];
  const missing = 8 - headParts.length - tailParts.length;
  const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(missing).fill("0"), ...tailParts];
  return parts.reduce((acc, part) => (acc << 16n) | BigInt(parseInt(part || "0", 16)), 0n);
}

const v4 = (cidr: string): Range => {
  const [base = "", bits = "32"] = cidr.split("/");
  return [v4ToBigInt(base), Number(bits)];
};
const v6 = (cidr: string): Range => {
  const [base = "", bits = "128"] = cidr.split("/");
  return [v6ToBigInt(base), Number(bits)];
};

const BLOCKED_V4: readonly Range[] = [
  "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
  "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
  "224.0.0.0/4", "240.0.0.0/4",
].map(v4);

const BLOCKED_V6: readonly Range[] = [
  "::/128", "::1/128", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
].map(v6);

function inRange(value: bigint, width: number, [prefix, bits]: Range): boolean {
  const shift = BigInt(width - bits);
  return value >> shift === prefix >> shift;
}

/** True for an address that is not publicly routable (and so must not be a webhook target). */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED_V4.some((range) => inRange(v4ToBigInt(address), 32, range));
  if (family !== 6) return true;
  const value = v6ToBigInt(address);
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) carry an IPv4 address.
  const embedded = value & 0xffffffffn;
  const isMapped = value >> 32n === 0xffffn || value >> 32n === 0n || value >> 32n === 0x64ff9b0000000000000000n;
  if (isMapped && value > 1n) {
    const dotted = [24n, 16n, 8n, 0n].map((s) => ((embedded >> s) & 0xffn).toString()).join(".");
    return BLOCKED_V4.some((range) => inRange(v4ToBigInt(dotted), 32, range));
  }
  return BLOCKED_V6.some((range) => inRange(value, 128, range));
}

/**
 * Resolves `hostname` (an IP literal resolves to itself) and throws RefusedAddressError when any address is not
 * public, unless `allowPrivate` is set. Returns the addresses.
 */
export async function assertPublicHost(
  hostname: string,
  options: { allowPrivate: boolean; lookup: AddressLookup },
): Promise<readonly string[]> {
  const bare = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  const addresses = isIP(bare) ? [bare] : await options.lookup(bare);
  if (addresses.length === 0) throw new Error(`${hostname} does not resolve`);
  if (!options.allowPrivate) {
    for (const address of addresses) {
      if (isNonPublicAddress(address)) throw new RefusedAddressError(hostname, address);
    }
  }
  return addresses;
}
