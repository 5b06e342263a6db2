// Webhook receivers follow the one outbound policy (src/net/outbound.ts); these names keep
// the webhook module's own vocabulary.
import { type AllowList, EMPTY_ALLOW_LIST, OutboundRefusedError, checkOutboundUrl, guardedLookup, isPublicAddress } from '../net/outbound.js';

export { isPublicAddress };

/** A receiver address inside a private, loopback, link-local or otherwise non-public range. */
export const BlockedAddressError = OutboundRefusedError;

/** Refuses a URL whose host is a non-public IP literal (those never reach the DNS lookup). */
export function assertPublicLiteral(url: URL, allow: AllowList = EMPTY_ALLOW_LIST): void {
  checkOutboundUrl(url, allow);
}

/** A `lookup` for http.request that refuses non-public addresses when connecting. */
export function publicOnlyLookup(allow: AllowList = EMPTY_ALLOW_LIST) {
  return guardedLookup(allow);
}
