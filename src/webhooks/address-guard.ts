import { lookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** A receiver address inside a private, loopback, link-local or otherwise non-public range. */
export class BlockedAddressError extends Error {
  override readonly name = 'BlockedAddressError';
}

/** True only for globally routable unicast addresses (IPv4-mapped IPv6 judged as IPv4). */
export function isPublicAddress(address: string): boolean {
  return ipaddr.isValid(address) && ipaddr.process(address).range() === 'unicast';
}

function blocked(host: string, address: string): BlockedAddressError {
  return new BlockedAddressError(
    `webhook host ${host} is ${address}, not a public address; private, loopback and link-local receivers are refused`,
  );
}

/** Refuses a URL whose host is a non-public IP literal (those never reach the DNS lookup). */
export function assertPublicLiteral(hostname: string): void {
  const literal = hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(literal) !== 0 && !isPublicAddress(literal)) throw blocked(hostname, literal);
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http.request that refuses the connection when any address the name
 * resolves to is not public. Checking at connect time, not when the URL is accepted, means
 * a name that later re-resolves to an internal address (DNS rebinding) is still refused.
 */
export function publicOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  const all: LookupAllOptions = { ...options, all: true };
  lookup(hostname, all, (error, addresses) => {
    if (error) return callback(error, []);
    const refused = addresses.find((entry) => !isPublicAddress(entry.address));
    if (refused) return callback(blocked(hostname, refused.address), []);
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0].address, addresses[0].family);
  });
}
