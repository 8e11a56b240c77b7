// The page: an identity bar (token, admin secret), GraphiQL, and the live panel.
import { GraphiQL } from 'graphiql';
import { useEffect, useMemo, useState } from 'react';
import { LivePanel } from './LivePanel.jsx';
import { connect, describe, discoverTables, graphiqlFetcher, identity } from './connection.js';

const STORED = 'forgegraph.playground.auth';
const NO_TABLES = [];

function defaultQuery(tables) {
  const table = tables.includes('posts') ? 'posts' : tables[0] ?? 'posts';
  return `# Run this, then insert, update or delete a row of
# "${table}" from any client: each change shows up here
# and in the Live changes panel on the right.
# A JWT in the Token field makes you act as its role.
#
# Any query field works as a subscription too
# (a live query): the result pane shows its
# result, then the new one after each change:
#   subscription { ${table}(limit: 3) { <fields> } }
# ${table}_stream sends the rows after a cursor,
# then every row inserted later:
#   subscription { ${table}_stream(batch_size: 10,
#     cursor: [{initial_value: {<column>: 0}}])
#     { <fields> } }
subscription TableChanged {
  tableChanged(table: "${table}") {
    type
    table
    id
    record
    old_record
    cursor
  }
}
`;
}

function loadAuth() {
  try {
    return { token: '', adminSecret: '', ...JSON.parse(sessionStorage.getItem(STORED) ?? '{}') };
  } catch {
    return { token: '', adminSecret: '' };
  }
}

// The fields apply (and reconnect) once typing pauses, not on every keystroke.
function useSettled(draft, delay = 400) {
  const [settled, setSettled] = useState(draft);
  useEffect(() => {
    const timer = setTimeout(() => {
      setSettled((prev) => (JSON.stringify(prev) === JSON.stringify(draft) ? prev : draft));
      sessionStorage.setItem(STORED, JSON.stringify(draft));
    }, delay);
    return () => clearTimeout(timer);
  }, [draft, delay]);
  return settled;
}

function useTables(auth) {
  const [found, setFound] = useState({ tables: null, error: null });
  useEffect(() => {
    let current = true;
    discoverTables(auth).then(
      (tables) => current && setFound({ tables, error: null }),
      (error) => current && setFound({ tables: [], error: describe(error) }),
    );
    return () => {
      current = false;
    };
  }, [auth]);
  return found;
}

function IdentityBar({ draft, setDraft, auth }) {
  const field = (key) => ({
    value: draft[key],
    onChange: (event) => setDraft({ ...draft, [key]: event.target.value }),
    spellCheck: false,
    autoComplete: 'off',
  });
  return (
    <header className="fg-bar">
      <strong className="fg-brand">forgegraph <span>playground</span></strong>
      <label>
        Token (JWT)
        <input name="token" placeholder="none: anonymous role" className="fg-token" {...field('token')} />
      </label>
      <label>
        Admin secret
        <input name="admin-secret" type="password" placeholder="none" {...field('adminSecret')} />
      </label>
      <span className="fg-identity">acting as <b>{identity(auth)}</b></span>
    </header>
  );
}

export function App() {
  const [draft, setDraft] = useState(loadAuth);
  const auth = useSettled(draft);
  const { tables, error } = useTables(auth);
  const [initialQuery, setInitialQuery] = useState(null);
  if (initialQuery === null && tables !== null) setInitialQuery(defaultQuery(tables));

  const wsClient = useMemo(() => connect(auth), [auth]);
  useEffect(() => () => wsClient.dispose(), [wsClient]);
  const fetcher = useMemo(() => graphiqlFetcher(auth, wsClient), [auth, wsClient]);

  return (
    <div className="fg-app">
      <IdentityBar draft={draft} setDraft={setDraft} auth={auth} />
      <main className="fg-main">
        <div className="fg-editor">
          {initialQuery !== null && (
            <GraphiQL fetcher={fetcher} defaultQuery={initialQuery} defaultEditorToolsVisibility={false}>
              <GraphiQL.Logo>GraphiQL</GraphiQL.Logo>
            </GraphiQL>
          )}
        </div>
        <LivePanel auth={auth} tables={tables ?? NO_TABLES} tablesError={error} />
      </main>
    </div>
  );
}
