/** `createClient` and `Table`: the SDK's public face over HTTP (reads, writes) and WebSocket (changes). */
import * as documents from "./documents.js";
import { ConnectionFailed, ForgegraphError } from "./errors.js";
import { DEFAULT_BACKOFF, Realtime, asError, backoffDelay, sleep, } from "./realtime.js";
/** The HTTP and WebSocket URLs of /graphql, from the server's base URL (or /graphql itself). */
export function endpoints(url) {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
        throw new TypeError(`expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
    }
    let path = parsed.pathname.replace(/\/+$/, "");
    if (!path.endsWith("/graphql"))
        path += "/graphql";
    parsed.pathname = path;
    parsed.hash = "";
    const http = parsed.toString();
    parsed.protocol = parsed.protocol === "https:" ? "wss:" : "ws:";
    return { http, ws: parsed.toString() };
}
/**
 * A forgegraph server. `createClient<Database>(url, options)` with generated
 * types (`forgegraph export-types --lang ts`), or untyped without.
 */
export function createClient(url, options = {}) {
    return new Client(url, options);
}
export class Client {
    constructor(url, options = {}) {
        this.columnCache = new Map();
        this.open = new Set();
        const { http, ws } = endpoints(url);
        this.httpUrl = http;
        this.wsUrl = ws;
        this.options = options;
        this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
        this.realtime = new Realtime({
            url: ws,
            headers: () => this.headers(),
            refreshable: options.getToken !== undefined,
            webSocketImpl: options.webSocketImpl,
            backoff: this.backoff,
            on: options.on,
        });
    }
    table(name) {
        return new Table(this, documents.checkedName(name));
    }
    /** The credentials of a request or a socket, asking `getToken` afresh. */
    async headers() {
        const headers = { ...this.options.headers };
        const token = this.options.getToken ? await this.options.getToken() : this.options.token;
        if (token)
            headers["Authorization"] = `Bearer ${token}`;
        if (this.options.adminSecret !== undefined)
            headers["X-Admin-Secret"] = this.options.adminSecret;
        return headers;
    }
    /** Run any GraphQL query or mutation; its `data`, or a thrown ForgegraphError. */
    async execute(query, variables) {
        const fetcher = this.options.fetch ?? globalThis.fetch;
        const body = { query };
        if (variables && Object.keys(variables).length)
            body.variables = variables;
        let response;
        try {
            response = await fetcher(this.httpUrl, {
                method: "POST",
                headers: { "Content-Type": "application/json", Accept: "application/json", ...(await this.headers()) },
                body: JSON.stringify(body),
            });
        }
        catch (error) {
            throw new ConnectionFailed(`cannot reach ${this.httpUrl}: ${error?.message ?? error}`);
        }
        let payload;
        try {
            payload = (await response.json());
        }
        catch {
            throw new ForgegraphError(`${this.httpUrl} answered ${response.status} with a body that is not JSON`);
        }
        if (payload?.errors?.length)
            throw ForgegraphError.fromGraphQL(payload.errors);
        if (!response.ok || typeof payload?.data !== "object" || payload.data === null) {
            throw new ForgegraphError(`${this.httpUrl} answered ${response.status} without data`);
        }
        return payload.data;
    }
    /** The newest change cursor now: a subscription with `since` set to it misses nothing after. */
    async changeCursor() {
        const data = await this.execute(documents.CHANGE_CURSOR);
        return String(data.changeCursor);
    }
    /** The table's columns this client's role may read (learned once, by introspection). */
    columns(table) {
        let known = this.columnCache.get(table);
        if (!known) {
            known = this.introspect(table);
            this.columnCache.set(table, known);
            known.catch(() => this.columnCache.delete(table));
        }
        return known;
    }
    async introspect(table) {
        const data = await this.execute(documents.TABLE_FIELDS, { name: table });
        const fields = data.__type?.fields;
        if (!fields?.length) {
            throw new ForgegraphError(`table ${JSON.stringify(table)} does not exist or is not available to this role`, "validation-failed");
        }
        const leaf = (t) => (t.kind === "NON_NULL" ? t.ofType?.kind : t.kind);
        return fields.filter((f) => leaf(f.type) === "SCALAR" || leaf(f.type) === "ENUM").map((f) => f.name);
    }
    /** Keep `stop` until it is called or the client closes; returns `stop`, untracking itself. */
    track(stop) {
        const tracked = () => {
            this.open.delete(tracked);
            stop();
        };
        this.open.add(tracked);
        return tracked;
    }
    /** End every subscription and live query, and close the socket. */
    async close() {
        for (const stop of [...this.open])
            stop();
        await this.realtime.close();
    }
}
function defined(values) {
    return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}
/** One table of the server: `db.table("posts")`. */
export class Table {
    constructor(client, // eslint-disable-line @typescript-eslint/no-explicit-any
    name) {
        this.client = client;
        this.name = name;
    }
    columns(columns) {
        return columns ?? this.client.columns(this.name);
    }
    /** Rows; `where` and `orderBy` in the Hasura dialect (`{id: {_gt: 3}}`, `{id: "desc"}`). */
    async select(options = {}) {
        const variables = defined({
            where: options.where,
            order_by: options.orderBy,
            limit: options.limit,
            offset: options.offset,
        });
        const query = documents.select(this.name, await this.columns(options.columns), variables);
        const data = await this.client.execute(query, variables);
        return data[this.name];
    }
    /** The row whose primary key is `pk` (`{id: 3}`), or null. */
    async byPk(pk, options = {}) {
        const where = Object.fromEntries(Object.entries(pk).map(([k, v]) => [k, { _eq: v }]));
        const rows = await this.select({ where: where, limit: 1, columns: options.columns });
        return rows[0] ?? null;
    }
    /** Insert one row or several, in one transaction; the rows as stored. */
    async insert(objects, options = {}) {
        const variables = defined({
            objects: Array.isArray(objects) ? objects : [objects],
            on_conflict: options.onConflict && { update_columns: [], ...options.onConflict },
        });
        const query = documents.insert(this.name, await this.columns(options.returning), variables);
        return this.mutate(`insert_${this.name}`, query, variables);
    }
    /** Set `set` (and add `inc`) on every row matching `where`; the rows after the change. */
    async update(where, set, options = {}) {
        const variables = defined({ where, _set: set, _inc: options.inc });
        const query = documents.update(this.name, await this.columns(options.returning), variables);
        return this.mutate(`update_${this.name}`, query, variables);
    }
    /** Update the row whose primary key is `pk`; the row after the change, or null when there is none. */
    async updateByPk(pk, set, options = {}) {
        const where = Object.fromEntries(Object.entries(pk).map(([k, v]) => [k, { _eq: v }]));
        const rows = await this.update(where, set, options);
        return rows[0] ?? null;
    }
    /** Delete every row matching `where` (`{}` matches all); the rows as they were. */
    async delete(where, options = {}) {
        const query = documents.remove(this.name, await this.columns(options.returning));
        return this.mutate(`delete_${this.name}`, query, { where });
    }
    /** `count` (default), `sum`, `avg`, `min`, `max`, ... of the rows matching `where`. */
    async aggregate(options = {}) {
        const { where, ...request } = options;
        const variables = defined({ where });
        const query = documents.aggregate(this.name, request, variables);
        const data = await this.client.execute(query, variables);
        return data[`${this.name}_aggregate`].aggregate;
    }
    async mutate(field, query, variables) {
        const data = await this.client.execute(query, variables);
        return data[field].returning;
    }
    /**
     * Call `callback(event)` for each change of this table, in cursor order, exactly once.
     *
     * Without `since`, starts from the server's newest cursor (`changeCursor`),
     * read first: every change committed after `unsubscribe.ready` resolves is
     * delivered, even across a dropped connection before the first event. Drops
     * are retried (backoff) and resumed from the last cursor delivered; what
     * retrying cannot fix (a refused table or filter, `invalid-cursor`, an
     * invalid token) ends the subscription and goes to `onError`.
     */
    subscribe(callback, options = {}) {
        const subscription = new ChangeSubscription(this.client, this.name, callback, options);
        const stop = this.client.track(() => subscription.stop());
        const unsubscribe = (() => stop());
        Object.defineProperty(unsubscribe, "cursor", { get: () => subscription.cursor });
        Object.defineProperty(unsubscribe, "ready", { value: subscription.ready });
        return unsubscribe;
    }
    /**
     * A live query: `callback(rows)` with the result of `select(options)` at once,
     * and again whenever a committed change alters it. Returns `unsubscribe()`.
     */
    live(options, callback) {
        let stopped = false;
        let dispose = null;
        const onError = options.onError ?? ((error) => console.error(`forgegraph: live query on ${this.name} ended:`, error));
        const variables = defined({
            where: options.where,
            order_by: options.orderBy,
            limit: options.limit,
            offset: options.offset,
        });
        (async () => {
            const columns = await this.columns(options.columns);
            if (stopped)
                return;
            const query = documents.select(this.name, columns, variables, "subscription");
            dispose = this.client.realtime.subscribe({ query, variables }, {
                next: (result) => {
                    if (stopped)
                        return;
                    if (result.errors?.length) {
                        stopped = true;
                        dispose?.();
                        onError(ForgegraphError.fromGraphQL(result.errors));
                        return;
                    }
                    const rows = (result.data?.[this.name] ?? []);
                    try {
                        callback(rows);
                    }
                    catch (error) {
                        console.error(`forgegraph: a live query callback for ${this.name} threw`, error);
                    }
                },
                error: (error) => {
                    if (stopped)
                        return;
                    stopped = true;
                    onError(asError(error));
                },
                complete: () => { },
            });
        })().catch((error) => {
            if (!stopped) {
                stopped = true;
                onError(asError(error));
            }
        });
        return this.client.track(() => {
            stopped = true;
            dispose?.();
        });
    }
}
/** One `tableChanged` subscription: its cursor, its dedup, its delivery chain. */
class ChangeSubscription {
    constructor(client, // eslint-disable-line @typescript-eslint/no-explicit-any
    table, callback, options) {
        this.client = client;
        this.callback = callback;
        this.options = options;
        /** The last cursor delivered (as a number, for ordering). */
        this.last = null;
        this.lastText = null;
        this.stopped = false;
        this.dispose = null;
        this.delivering = Promise.resolve();
        // graphql-ws sends this same object again on every reconnect: moving
        // `since` on in it is what makes a resubscribe resume after the last event.
        this.payload = { query: documents.TABLE_CHANGED, variables: defined({ table, where: options.where }) };
        this.ready = this.start();
        this.ready.catch(() => { });
    }
    get cursor() {
        return this.lastText ?? this.payload.variables.since ?? null;
    }
    async start() {
        let since = this.options.since;
        if (since === undefined) {
            // A cursor from the start, not from the first event: a drop before that
            // event then resumes from here and loses nothing.
            since = await this.startingCursor();
        }
        if (this.stopped)
            return;
        this.payload.variables.since = since;
        try {
            this.dispose = this.client.realtime.subscribe(this.payload, {
                next: (result) => this.next(result),
                error: (error) => this.fail(asError(error)),
                complete: () => {
                    this.stopped = true;
                },
            });
        }
        catch (error) {
            // No WebSocket implementation (Node 20 without `webSocketImpl`), a bad URL...
            const failure = new ForgegraphError(error?.message ?? String(error));
            this.fail(failure);
            throw failure;
        }
    }
    /** `changeCursor`, retried while the server cannot be reached; other errors end the subscription. */
    async startingCursor() {
        for (let attempt = 0;; attempt++) {
            try {
                return await this.client.changeCursor();
            }
            catch (error) {
                if (!(error instanceof ConnectionFailed) || this.stopped) {
                    this.fail(error);
                    throw error;
                }
                await sleep(backoffDelay(this.client.backoff, attempt));
            }
        }
    }
    next(result) {
        if (this.stopped)
            return;
        if (result.errors?.length) {
            this.fail(ForgegraphError.fromGraphQL(result.errors));
            return;
        }
        const data = result.data?.tableChanged;
        if (!data)
            return;
        const cursor = String(data.cursor);
        if (!/^\d+$/.test(cursor)) {
            // A throw here would make graphql-ws close the socket shared by every subscription.
            this.fail(new ForgegraphError(`the server sent a cursor that is not decimal digits: ${JSON.stringify(cursor)}`));
            return;
        }
        const position = BigInt(cursor);
        if (this.last !== null && position <= this.last)
            return; // seen before: a replay overlapping a delivery
        this.last = position;
        this.lastText = cursor;
        this.payload.variables.since = cursor;
        const event = {
            type: data.type,
            table: data.table,
            record: (data.record ?? null),
            id: data.id ?? null,
            cursor,
            old_record: (data.old_record ?? null),
        };
        // In order, one at a time, also for async callbacks; a throwing callback stops nothing.
        this.delivering = this.delivering.then(async () => {
            if (this.stopped)
                return;
            try {
                await this.callback(event);
            }
            catch (error) {
                console.error(`forgegraph: a callback threw on cursor ${cursor}`, error);
            }
        });
    }
    fail(error) {
        if (this.stopped)
            return;
        this.stopped = true;
        this.dispose?.();
        const report = this.options.onError ?? ((e) => console.error("forgegraph: subscription ended:", e));
        // After the events already queued for the callback.
        this.delivering = this.delivering.then(() => report(error));
    }
    stop() {
        this.stopped = true;
        this.dispose?.();
        this.dispose = null;
    }
}
