/** `createClient` and `Table`: the SDK's public face over HTTP (reads, writes) and WebSocket (changes). */
import { Realtime, type Backoff, type ConnectionListeners } from "./realtime.js";
import type { AggregateOptions, AggregateResult, AnySchema, ChangeEvent, Column, DeleteOptions, InsertOptions, LiveOptions, SchemaOf, SelectOptions, SubscribeOptions, Unsubscribe, UpdateOptions, Where } from "./types.js";
type Fetch = typeof globalThis.fetch;
type Json = Record<string, unknown>;
export interface ClientOptions {
    /** A JWT: act as its user and role. */
    token?: string;
    /**
     * Called for every HTTP request and every (re)connection of the socket: return
     * a current JWT (or null for anonymous). Takes precedence over `token`.
     */
    getToken?: () => string | null | undefined | Promise<string | null | undefined>;
    /** `X-Admin-Secret`: role admin, which no permission rule limits. */
    adminSecret?: string;
    /** More headers for every request and the socket's connection_init. */
    headers?: Record<string, string>;
    /** Default: the global fetch. */
    fetch?: Fetch;
    /** A WebSocket class; default: the global WebSocket (on Node 20, pass `ws`'s). */
    webSocketImpl?: unknown;
    /** Reconnection waits, in milliseconds; see `Backoff`. */
    backoff?: Partial<Backoff>;
    /** Listeners for the socket's state (`connecting`, `connected`, `closed`), e.g. for a status badge. */
    on?: ConnectionListeners;
}
/** The HTTP and WebSocket URLs of /graphql, from the server's base URL (or /graphql itself). */
export declare function endpoints(url: string): {
    http: string;
    ws: string;
};
/**
 * A forgegraph server. `createClient<Database>(url, options)` with generated
 * types (`forgegraph export-types --lang ts`), or untyped without.
 */
export declare function createClient<DB extends SchemaOf<DB> = AnySchema>(url: string, options?: ClientOptions): Client<DB>;
export declare class Client<DB extends SchemaOf<DB> = AnySchema> {
    readonly httpUrl: string;
    readonly wsUrl: string;
    /** The one WebSocket of this client (opened by the first subscription). */
    readonly realtime: Realtime;
    readonly backoff: Backoff;
    private readonly options;
    private readonly columnCache;
    private readonly open;
    constructor(url: string, options?: ClientOptions);
    table<K extends keyof DB & string>(name: K): Table<DB[K]>;
    /** The credentials of a request or a socket, asking `getToken` afresh. */
    headers(): Promise<Record<string, string>>;
    /** Run any GraphQL query or mutation; its `data`, or a thrown ForgegraphError. */
    execute<T = Json>(query: string, variables?: Json): Promise<T>;
    /** The newest change cursor now: a subscription with `since` set to it misses nothing after. */
    changeCursor(): Promise<string>;
    /** The table's columns this client's role may read (learned once, by introspection). */
    columns(table: string): Promise<string[]>;
    private introspect;
    /** Keep `stop` until it is called or the client closes; returns `stop`, untracking itself. */
    track(stop: () => void): () => void;
    /** End every subscription and live query, and close the socket. */
    close(): Promise<void>;
}
/** A table's three shapes, as `SchemaOf` checks them. */
export type TableLike = {
    Row: object;
    Insert: object;
    Update: object;
};
type AnyTable = AnySchema[string];
/** One table of the server: `db.table("posts")`. */
export declare class Table<T extends TableLike = AnyTable> {
    readonly client: Client<any>;
    readonly name: string;
    constructor(client: Client<any>, // eslint-disable-line @typescript-eslint/no-explicit-any
    name: string);
    private columns;
    /** Rows; `where` and `orderBy` in the Hasura dialect (`{id: {_gt: 3}}`, `{id: "desc"}`). */
    select(options?: SelectOptions<T["Row"]>): Promise<T["Row"][]>;
    /** The row whose primary key is `pk` (`{id: 3}`), or null. */
    byPk(pk: Partial<T["Row"]>, options?: {
        columns?: Column<T["Row"]>[];
    }): Promise<T["Row"] | null>;
    /** Insert one row or several, in one transaction; the rows as stored. */
    insert(objects: T["Insert"] | T["Insert"][], options?: InsertOptions<T["Row"]>): Promise<T["Row"][]>;
    /** Set `set` (and add `inc`) on every row matching `where`; the rows after the change. */
    update(where: Where<T["Row"]>, set: T["Update"], options?: UpdateOptions<T["Row"]>): Promise<T["Row"][]>;
    /** Update the row whose primary key is `pk`; the row after the change, or null when there is none. */
    updateByPk(pk: Partial<T["Row"]>, set: T["Update"], options?: UpdateOptions<T["Row"]>): Promise<T["Row"] | null>;
    /** Delete every row matching `where` (`{}` matches all); the rows as they were. */
    delete(where: Where<T["Row"]>, options?: DeleteOptions<T["Row"]>): Promise<T["Row"][]>;
    /** `count` (default), `sum`, `avg`, `min`, `max`, ... of the rows matching `where`. */
    aggregate(options?: AggregateOptions<T["Row"]>): Promise<AggregateResult<T["Row"]>>;
    private mutate;
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
    subscribe(callback: (event: ChangeEvent<T["Row"]>) => unknown, options?: SubscribeOptions<T["Row"]>): Unsubscribe;
    /**
     * A live query: `callback(rows)` with the result of `select(options)` at once,
     * and again whenever a committed change alters it. Returns `unsubscribe()`.
     */
    live(options: LiveOptions<T["Row"]>, callback: (rows: T["Row"][]) => unknown): () => void;
}
export {};
