/** Who calls a tenant route or holds a socket: a user's session, or an API key of that user. */
export interface Principal {
  readonly kind: 'user' | 'api_key';
  readonly userId: string;
  readonly sessionId: string | null;
  readonly apiKeyId: string | null;
  /** An API key's scope; null for a user session. */
  readonly scope: readonly string[] | null;
}
