import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { negotiateLocale, supportedLocale, type Locale } from '../i18n/index.js';
import type { TenantContext } from '../tenancy/directory.js';

/** Where a request's locale choices come from: the user's `locale` and the tenant's `locale.default`. */
export interface LocaleSources {
  /** The user's locale; `cachedOnly` answers from memory alone (undefined when not cached). */
  userLocale(tenant: TenantContext, userId: string, cachedOnly: boolean): Promise<string | null | undefined> | string | null | undefined;
  tenantLocale(tenant: TenantContext, cachedOnly: boolean): Promise<string | null | undefined> | string | null | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The negotiated locale, once something needed it (an error, a mail). */
    locale: Locale | null;
  }
  interface FastifyInstance {
    localeSources: LocaleSources | null;
  }
}

const acceptLanguage = (request: FastifyRequest) => (typeof request.headers['accept-language'] === 'string' ? request.headers['accept-language'] : undefined);

/** §15's locale of a request: the user's, else Accept-Language's best match, else the tenant's default. Never fails. */
export async function requestLocale(request: FastifyRequest): Promise<Locale> {
  if (request.locale) return request.locale;
  const sources = request.server.localeSources;
  const { tenant, principal } = request;
  const quietly = async <T>(read: () => Promise<T> | T) => {
    try {
      return await read();
    } catch {
      // The database may be what failed: the answer is still given, in the header's language.
      return undefined;
    }
  };
  const user = sources && tenant && principal ? await quietly(() => sources.userLocale(tenant, principal.userId, false)) : undefined;
  const tenantDefault = sources && tenant ? await quietly(() => sources.tenantLocale(tenant, false)) : undefined;
  request.locale = negotiateLocale({ user, acceptLanguage: acceptLanguage(request), tenantDefault });
  return request.locale;
}

/**
 * A page's locale: `?lang=` when the service speaks it (the reader picked it on the page: a
 * browser link cannot send a header), else requestLocale's. Sets Content-Language.
 */
export async function pageLocale(request: FastifyRequest, reply: FastifyReply, lang: string | undefined): Promise<Locale> {
  const chosen = supportedLocale(lang);
  if (chosen) request.locale = chosen;
  const locale = await requestLocale(request);
  reply.header('content-language', locale);
  return locale;
}

/** The same choice from cached state only, without a promise (every answer's Content-Language). */
export function cachedLocale(request: FastifyRequest): Locale {
  const sources = request.server.localeSources;
  const { tenant, principal } = request;
  const user = sources && tenant && principal ? sources.userLocale(tenant, principal.userId, true) : undefined;
  const tenantDefault = sources && tenant ? sources.tenantLocale(tenant, true) : undefined;
  return negotiateLocale({ user: typeof user === 'string' ? user : null, acceptLanguage: acceptLanguage(request), tenantDefault: typeof tenantDefault === 'string' ? tenantDefault : null });
}

/** The answer's Content-Language from what is known so far (cached state only, no promise): the auth hooks call it again once they know the tenant and the caller. */
export function answerLanguage(request: FastifyRequest, reply: FastifyReply): void {
  reply.header('content-language', request.locale ?? cachedLocale(request));
}

/** Where locales come from; every answer carries Content-Language (set on the way in, refined by the auth hooks and by problems). */
export function registerContentLanguage(app: FastifyInstance, sources: LocaleSources | null): void {
  app.decorate('localeSources', sources);
  app.decorateRequest('locale', null);
}
