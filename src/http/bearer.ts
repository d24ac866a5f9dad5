const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The token of an `Authorization: Bearer <token>` header, or undefined: for tenant and platform
 * routes alike. The usual spelling is taken without a pattern, whose cost grows with a token's
 * length (any other whitespace in a token fails its verification; HTTP strips it around the value).
 */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  if (header.length > 7 && header.startsWith('Bearer ') && header.indexOf(' ', 7) < 0) return header.slice(7);
  return BEARER.exec(header)?.[1];
}
