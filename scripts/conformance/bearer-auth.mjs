// Preloaded into the conformance runner (NODE_OPTIONS=--import <this file>) so that every request
// it sends to the gateway carries `Authorization: Bearer <token>`, as any real MCP client in front
// of capgate would. The suite's `server` command has no option for headers or auth (0.1.16: its
// MCP client is the SDK's StreamableHTTPClientTransport with no requestInit and no authProvider, a
// few scenarios use global fetch directly, and dns-rebinding-protection uses undici's request), so
// the header is added underneath it, in the two HTTP functions the suite calls. Only requests to
// CONFORMANCE_BEARER_ORIGIN get it, never another host; a request that already carries an
// Authorization header keeps its own.
//
// env: CONFORMANCE_BEARER_TOKEN (the JWT), CONFORMANCE_BEARER_ORIGIN (e.g. http://127.0.0.1:8080)

import { createRequire } from 'node:module';

const token = process.env.CONFORMANCE_BEARER_TOKEN;
const origin = process.env.CONFORMANCE_BEARER_ORIGIN;
if (!token || !origin) {
  throw new Error('bearer-auth.mjs needs CONFORMANCE_BEARER_TOKEN and CONFORMANCE_BEARER_ORIGIN');
}
const expectedOrigin = new URL(origin).origin;
const forGateway = (url) => {
  try {
    return new URL(String(url)).origin === expectedOrigin;
  } catch {
    return false;
  }
};
const bearer = `Bearer ${token}`;

// 1. Global fetch (the SDK's transport, sse-polling, sse-multiple-streams).
const originalFetch = globalThis.fetch;
globalThis.fetch = function fetchWithBearer(input, init) {
  const url = input instanceof Request ? input.url : input;
  if (!forGateway(url)) return originalFetch(input, init);
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has('authorization')) headers.set('authorization', bearer);
  return originalFetch(input, { ...init, headers });
};

// 2. undici's request (dns-rebinding-protection). The suite imports it from the CommonJS package
// in node_modules; replacing the export before that import snapshots it covers the suite's copy.
const require = createRequire(`${process.cwd()}/`);
const undici = require('undici');
const originalRequest = undici.request;
undici.request = function requestWithBearer(url, options = {}) {
  if (!forGateway(url)) return originalRequest.call(this, url, options);
  const headers = { ...(options.headers ?? {}) };
  if (!Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')) {
    headers.authorization = bearer;
  }
  return originalRequest.call(this, url, { ...options, headers });
};
