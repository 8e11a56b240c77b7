// The latest table changes, newest first: one `tableChanged` subscription per
// table through the forgegraph SDK (clients/js), whose client follows the token:
// one socket for all tables, each resumed from its last cursor after a drop.
import { useEffect, useState } from 'react';
import { createClient } from 'forgegraph';
import { authHeaders, describe, httpUrl } from './connection.js';

const LIMIT = 100;

function useTableChanges(auth, tables) {
  const [changes, setChanges] = useState([]);
  const [status, setStatus] = useState({ state: 'connecting' });
  const [problems, setProblems] = useState({});

  useEffect(() => {
    setProblems({});
    setStatus({ state: 'connecting' });
    if (!tables.length) return undefined;
    let open = true;
    const db = createClient(httpUrl, {
      headers: authHeaders(auth),
      backoff: { initial: 500, maximum: 8000 },
      on: {
        connecting: () => open && setStatus({ state: 'connecting' }),
        connected: () => open && setStatus({ state: 'connected' }),
        closed: (event) => open && setStatus({ state: 'closed', message: describe(event) }),
      },
    });
    for (const table of tables) {
      db.table(table).subscribe(
        (change) => {
          if (!open) return;
          const row = { ...change, at: new Date(), key: `${change.table}:${change.cursor}` };
          setChanges((all) => [row, ...all].slice(0, LIMIT));
        },
        { onError: (error) => open && setProblems((all) => ({ ...all, [table]: describe(error) })) },
      );
    }
    return () => {
      open = false;
      db.close();
    };
  }, [auth, tables]);

  return { changes, status, problems, clear: () => setChanges([]) };
}

function StatusBadge({ status, tables }) {
  if (!tables.length) return <span className="fg-status fg-idle">no tables</span>;
  return <span className={`fg-status fg-${status.state}`} title={status.message}>{status.state}</span>;
}

export function LivePanel({ auth, tables, tablesError }) {
  const { changes, status, problems, clear } = useTableChanges(auth, tables);
  const errors = [
    ...(tablesError ? [`Could not list the tables: ${tablesError}`] : []),
    ...(status.state === 'closed' && status.message ? [status.message] : []),
    ...Object.entries(problems).map(([table, message]) => `${table}: ${message}`),
  ];
  return (
    <aside className="fg-live" aria-label="Live changes">
      <header>
        <h2>Live changes</h2>
        <StatusBadge status={status} tables={tables} />
        <button type="button" onClick={clear} disabled={!changes.length}>Clear</button>
      </header>
      {!tablesError && (
        <p className="fg-tables">
          {tables.length ? `Watching ${tables.join(', ')}` : 'No table with a primary key to watch.'}
        </p>
      )}
      {errors.map((message) => <p key={message} className="fg-error" role="alert">{message}</p>)}
      <table className="fg-changes">
        <thead>
          <tr><th>type</th><th>table</th><th>id</th><th>cursor</th><th>time</th></tr>
        </thead>
        <tbody>
          {changes.map((change) => (
            <tr key={change.key} className="fg-change">
              <td><span className={`fg-type fg-${change.type}`}>{change.type}</span></td>
              <td>{change.table}</td>
              <td><code>{JSON.stringify(change.id)}</code></td>
              <td><code>{change.cursor}</code></td>
              <td><time dateTime={change.at.toISOString()}>{change.at.toLocaleTimeString()}</time></td>
            </tr>
          ))}
        </tbody>
      </table>
      {!changes.length && <p className="fg-empty">Changes appear here as rows are inserted, updated or deleted.</p>}
    </aside>
  );
}
