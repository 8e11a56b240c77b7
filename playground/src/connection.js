// How the page reaches the server that served it (SPEC section 3) and who it
// acts as there (SPEC section 7): a JWT, the admin secret, or nobody.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { getOperationAST, parse } from 'graphql';
import { createClient } from 'graphql-ws';

export const httpUrl = new URL('/graphql', window.location.href).href;
export const wsUrl = `${window.location.protocol === 'https:' ? 'wss:' : 'ws:'}//${window.location.host}/graphql`;

const FORBIDDEN = 4403;

export function authHeaders({ token, adminSecret }) {
  const headers = {};
  const jwt = token.trim().replace(/^bearer\s+/i, '');
  if (jwt) headers.Authorization = `Bearer ${jwt}`;
  if (adminSecret.trim()) headers['X-Admin-Secret'] = adminSecret.trim();
  return headers;
}

// Who the server will take us for, read from the token without checking it
// (the server does that): shown beside the fields.
export function identity(auth) {
  if (auth.adminSecret.trim()) return 'admin (X-Admin-Secret)';
  const jwt = auth.token.trim().replace(/^bearer\s+/i, '');
  if (!jwt) return 'anonymous';
  try {
    const claims = JSON.parse(atob(jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return `role ${claims.role ?? 'user'}${claims.sub == null ? '' : `, sub ${claims.sub}`}`;
  } catch {
    return 'not a JWT: the server will refuse it';
  }
}

// One graphql-ws client per identity: a new token means a new connection_init.
export function connect(auth, onStatus = () => {}) {
  return createClient({
    url: wsUrl,
    connectionParams: { headers: authHeaders(auth) },
    // A refused token stays refused: report it at once instead of retrying.
    shouldRetry: (event) => event?.code !== FORBIDDEN,
    retryAttempts: 20,
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** retries, 8000))),
    on: {
      connecting: () => onStatus({ state: 'connecting' }),
      connected: () => onStatus({ state: 'connected' }),
      closed: (event) => onStatus({ state: 'closed', message: describe(event) }),
    },
  });
}

// GraphiQL's fetcher: every subscription (tableChanged, a live query, a
// t_stream) over `client`, the rest over HTTP. A failed subscription ends with
// an ordinary `errors` result, so GraphiQL shows the reason (say, a refused
// token) rather than a stack trace.
export function graphiqlFetcher(auth, client) {
  const http = createGraphiQLFetcher({ url: httpUrl, headers: authHeaders(auth) });
  return (params, options) => {
    const { current, document, subscription } = asTyped(params);
    return subscription ? overSocket(client, current) : http(current, { ...options, documentAST: document });
  };
}

// GraphiQL re-reads the editor's operations 100 ms after the last keystroke, so
// a run right after an edit (a paste, then Ctrl-Enter) comes with the previous
// text's documentAST and operationName. `query` is always the text as it is:
// decide from it, and drop a name it no longer holds when it has one operation
// (the one GraphiQL will pick once it catches up).
function asTyped(params) {
  let document;
  try {
    document = parse(params.query);
  } catch {
    return { current: params, document: undefined, subscription: false }; // the server reports the syntax error
  }
  const operations = document.definitions.filter((definition) => definition.kind === 'OperationDefinition');
  const stale = params.operationName && !operations.some((operation) => operation.name?.value === params.operationName);
  const current = stale && operations.length === 1 ? { ...params, operationName: null } : params;
  const subscription = getOperationAST(document, current.operationName)?.operation === 'subscription';
  return { current, document, subscription };
}

async function* overSocket(client, params) {
  try {
    yield* client.iterate(params);
  } catch (error) {
    yield { errors: Array.isArray(error) ? error : [{ message: describe(error) }] };
  }
}

// A readable line for anything a graphql-ws sink or fetch may throw.
export function describe(error) {
  if (Array.isArray(error)) return error.map(describe).join('; ');
  if (error && typeof error === 'object' && 'code' in error && 'reason' in error) {
    const why = error.code === FORBIDDEN ? ' (the token or admin secret was refused)' : '';
    return `connection closed: ${error.code}${error.reason ? ` ${error.reason}` : ''}${why}`;
  }
  if (error?.message) {
    // A GraphQL error has extensions.code; the SDK's ForgegraphError has code.
    const code = error.extensions?.code ?? (typeof error.code === 'string' ? error.code : undefined);
    return code ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

const TABLES_QUERY = '{ __schema { queryType { fields { name } } subscriptionType { fields { name } } } }';

// Tables that can change: query_root fields with a `<t>_by_pk` sibling (SPEC
// section 4; tables without a primary key are read-only and send no events).
export async function discoverTables(auth) {
  const response = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...authHeaders(auth) },
    body: JSON.stringify({ query: TABLES_QUERY }),
  });
  const body = await response.json().catch(() => ({ errors: [{ message: `HTTP ${response.status}` }] }));
  if (body.errors?.length) throw new Error(describe(body.errors));
  const schema = body.data.__schema;
  if (!schema.subscriptionType?.fields.some((field) => field.name === 'tableChanged')) return [];
  const names = new Set(schema.queryType.fields.map((field) => field.name));
  return [...names].filter((name) => names.has(`${name}_by_pk`)).sort();
}
