// Outbound connections the server makes for clients (image URLs to classify, webhook
// targets): the one policy on where they may go. Only http(s); only globally routable
// unicast addresses, judged after DNS resolution at connect time (so a name that re-resolves
// to an internal address is still refused) and again on every redirect; hosts and CIDRs in
// OUTBOUND_ALLOW are exempt, for tests and internal deployments.
import { lookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** A URL the policy refuses: a scheme other than http(s), or a non-public address. */
export class OutboundRefusedError extends Error {
  override readonly name = 'OutboundRefusedError';
}

/** Why a permitted fetch failed: unreachable, too slow, too large, a bad status. */
export class OutboundFetchError extends Error {
  override readonly name = 'OutboundFetchError';
}

export interface AllowList {
  /** Lower-case host names, exempt whatever they resolve to. */
  hosts: ReadonlySet<string>;
  ranges: ReadonlyArray<[ipaddr.IPv4 | ipaddr.IPv6, number]>;
}

export const EMPTY_ALLOW_LIST: AllowList = { hosts: new Set(), ranges: [] };

/**
 * Parses `OUTBOUND_ALLOW`: comma-separated host names, IP addresses and CIDRs. Throws on an
 * entry that is none of them.
 */
export function parseAllowList(text: string | undefined): AllowList {
  const hosts = new Set<string>();
  const ranges: [ipaddr.IPv4 | ipaddr.IPv6, number][] = [];
  for (const raw of (text ?? '').split(',')) {
    const entry = raw
      .trim()
      .toLowerCase()
      .replace(/^\[(.*)\]$/, '$1');
    if (entry === '') continue;
    if (entry.includes('/')) {
      try {
        const [address, bits] = ipaddr.parseCIDR(entry);
        // Addresses are judged as ipaddr.process gives them: mapped IPv6 as IPv4.
        const mapped = address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96;
        ranges.push(mapped ? [(address as ipaddr.IPv6).toIPv4Address(), bits - 96] : [address, bits]);
      } catch {
        throw new Error(`${JSON.stringify(raw.trim())} is not a CIDR`);
      }
    } else if (ipaddr.isValid(entry)) {
      const address = ipaddr.process(entry);
      ranges.push([address, address.kind() === 'ipv4' ? 32 : 128]);
    } else if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(entry)) {
      hosts.add(entry);
    } else {
      throw new Error(`${JSON.stringify(raw.trim())} is neither a host name, an IP address nor a CIDR`);
    }
  }
  return { hosts, ranges };
}

// Ranges ipaddr.js calls unicast that still reach the local host or nothing routable:
// IPv4-compatible IPv6 (::a.b.c.d, deprecated, some stacks map it to IPv4).
const EXTRA_BLOCKED: [ipaddr.IPv6, number][] = [ipaddr.IPv6.parseCIDR('::/96') as [ipaddr.IPv6, number]];

/**
 * True only for globally routable unicast addresses. Private, loopback, link-local (cloud
 * metadata at 169.254.169.254 included), CGNAT, multicast, broadcast, unspecified, reserved,
 * unique-local and tunnelling ranges (6to4, Teredo, NAT64: they can embed an internal IPv4
 * address) are not; IPv4-mapped IPv6 is judged as the IPv4 address it carries.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  const parsed = ipaddr.process(address);
  if (parsed.range() !== 'unicast') return false;
  if (parsed.kind() === 'ipv6') return !EXTRA_BLOCKED.some((range) => (parsed as ipaddr.IPv6).match(range));
  return true;
}

function inAllowedRange(address: string, allow: AllowList): boolean {
  if (!ipaddr.isValid(address)) return false;
  const parsed = ipaddr.process(address);
  return allow.ranges.some(([base, bits]) => {
    if (parsed instanceof ipaddr.IPv4 && base instanceof ipaddr.IPv4) return parsed.match(base, bits);
    if (parsed instanceof ipaddr.IPv6 && base instanceof ipaddr.IPv6) return parsed.match(base, bits);
    return false;
  });
}

/** Whether a connection to `address` (reached through `host`) is permitted. */
export function isAddressPermitted(host: string, address: string, allow: AllowList): boolean {
  return allow.hosts.has(host.toLowerCase()) || isPublicAddress(address) || inAllowedRange(address, allow);
}

function refused(host: string, address: string): OutboundRefusedError {
  return new OutboundRefusedError(
    `host ${host} is ${address}, not a public address; private, loopback, link-local and metadata addresses are refused`,
  );
}

/**
 * Refuses a URL whose scheme is not http(s), or whose host is a non-public IP literal
 * (literals never reach the DNS lookup). Returns the parsed URL.
 */
export function checkOutboundUrl(url: string | URL, allow: AllowList): URL {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new OutboundRefusedError('not an absolute URL');
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    throw new OutboundRefusedError(`scheme ${target.protocol} is not allowed; use http or https`);
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0 && !isAddressPermitted(host, host, allow)) throw refused(target.hostname, host);
  return target;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http.request that refuses the connection when any address the name resolves
 * to is not permitted. Checking here, at connect time, closes the gap a DNS rebinding attack
 * uses between checking a name and connecting to it.
 */
export function guardedLookup(allow: AllowList) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    const all: LookupAllOptions = { ...options, all: true };
    lookup(hostname, all, (error, addresses) => {
      if (error) return callback(error, []);
      const bad = addresses.find((entry) => !isAddressPermitted(hostname, entry.address, allow));
      if (bad) return callback(refused(hostname, bad.address), []);
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
}

export interface OutboundGetOptions {
  allow: AllowList;
  timeoutMs: number;
  maxBytes: number;
  /** Redirects followed, each re-checked; default 3. */
  maxRedirects?: number;
}

export interface OutboundResponse {
  bytes: Buffer;
  contentType: string | undefined;
}

interface Answer {
  status: number;
  location: string | undefined;
  contentType: string | undefined;
  bytes: Buffer;
}

function getOnce(target: URL, allow: AllowList, maxBytes: number, signal: AbortSignal): Promise<Answer> {
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    // agent: false: a pooled keep-alive socket would skip the lookup, and with it the check.
    const request = transport.get(
      target,
      { agent: false, signal, lookup: guardedLookup(allow), headers: { accept: 'image/*' } },
      (response) => {
        const status = response.statusCode ?? 0;
        const location = response.headers.location;
        const contentType = response.headers['content-type'];
        if (status >= 300 && status < 400) {
          response.resume();
          return resolve({ status, location, contentType, bytes: Buffer.alloc(0) });
        }
        if (status < 200 || status >= 300) {
          response.destroy();
          return resolve({ status, location, contentType, bytes: Buffer.alloc(0) });
        }
        if (Number(response.headers['content-length'] ?? 0) > maxBytes) {
          reject(new OutboundFetchError(`the image is larger than ${maxBytes} bytes`));
          return response.destroy();
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            reject(new OutboundFetchError(`the image is larger than ${maxBytes} bytes`));
            response.destroy();
          } else chunks.push(chunk);
        });
        response.on('end', () => resolve({ status, location, contentType, bytes: Buffer.concat(chunks) }));
        response.on('error', () => reject(new OutboundFetchError('the download broke off')));
        response.on('aborted', () => reject(new OutboundFetchError('the download broke off')));
      },
    );
    request.on('error', reject);
  });
}

/**
 * GETs a URL under the policy, with one time limit for the whole exchange (redirects
 * included) and a size limit. Throws OutboundRefusedError or OutboundFetchError.
 */
export async function outboundGet(url: string, options: OutboundGetOptions): Promise<OutboundResponse> {
  const { allow, timeoutMs, maxBytes, maxRedirects = 3 } = options;
  const signal = AbortSignal.timeout(timeoutMs);
  let target = checkOutboundUrl(url, allow);
  for (let redirects = 0; ; redirects++) {
    let answer: Answer;
    try {
      answer = await getOnce(target, allow, maxBytes, signal);
    } catch (error) {
      if (error instanceof OutboundRefusedError || error instanceof OutboundFetchError) throw error;
      if (signal.aborted) throw new OutboundFetchError(`no answer within ${timeoutMs} ms`);
      throw new OutboundFetchError('the URL cannot be reached');
    }
    if (answer.status >= 300 && answer.status < 400 && answer.location !== undefined) {
      if (redirects >= maxRedirects) throw new OutboundFetchError(`more than ${maxRedirects} redirects`);
      let next: URL;
      try {
        next = new URL(answer.location, target);
      } catch {
        throw new OutboundFetchError('the redirect Location is not a URL');
      }
      target = checkOutboundUrl(next, allow);
      continue;
    }
    if (answer.status < 200 || answer.status >= 300)
      throw new OutboundFetchError(`the URL answered HTTP ${answer.status}`);
    return { bytes: answer.bytes, contentType: answer.contentType };
  }
}
