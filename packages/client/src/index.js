// A fetch client of the service, typed by schema.d.ts (see index.d.ts): openapi-fetch, with the caller's credentials on every request.
import createFetchClient from 'openapi-fetch';

export function createClient({ baseUrl, token, apiKey, headers, fetch } = {}) {
  const client = createFetchClient({ baseUrl, headers, ...(fetch ? { fetch } : {}) });
  if (token !== undefined || apiKey !== undefined) {
    client.use({
      async onRequest({ request }) {
        // A function gives the current token at each request (after a refresh, say).
        const bearer = typeof token === 'function' ? await token() : token;
        if (bearer) request.headers.set('authorization', `Bearer ${bearer}`);
        else if (apiKey) request.headers.set('x-api-key', apiKey);
        return request;
      },
    });
  }
  return client;
}
