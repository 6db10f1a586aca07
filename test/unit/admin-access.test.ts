// Who may read /trace (observe/admin-access.ts): our Host, and the bearer token.
import { describe, expect, it } from 'vitest';
import { traceAccess } from '../../src/observe/admin-access.js';

const settings = { hostnames: ['mx1.contoso.com'], token: 'secret-token-0123456789' };
const bearer = 'Bearer secret-token-0123456789';

describe('traceAccess', () => {
  it.each([
    ['127.0.0.1:8025', bearer, 'ok'],
    ['[::1]:8025', bearer, 'ok'],
    ['localhost:8025', bearer, 'ok'],
    ['MX1.contoso.com.', bearer, 'ok'],
    ['10.1.2.3', bearer, 'ok'],
    ['evil.example:8025', bearer, 421], // DNS rebinding
    [undefined, bearer, 421],
    ['127.0.0.1:8025', undefined, 401],
    ['127.0.0.1:8025', 'Bearer secret-token-012345678', 401], // one character short
    ['127.0.0.1:8025', 'Basic c2VjcmV0', 401],
    ['127.0.0.1:8025', 'bearer secret-token-0123456789', 'ok'],
  ] as const)('Host %s, Authorization %s → %s', (host, authorization, want) => {
    const a = traceAccess({ host, authorization }, settings);
    expect(a.ok ? 'ok' : a.status).toBe(want);
  });
  it('without a configured token /trace is closed (403), whatever is sent', () => {
    expect(traceAccess({ host: '127.0.0.1', authorization: bearer }, { hostnames: [], token: null })).toMatchObject({ ok: false, status: 403 });
  });
});
