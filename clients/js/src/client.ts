/** `createClient` and `Table`: the SDK's public face over HTTP (reads, writes) and WebSocket (changes). */

import * as documents from "./documents.js";
import { ConnectionFailed, ForgegraphError } from "./errors.js";
import {
  DEFAULT_BACKOFF,
  Realtime,
  asError,
  backoffDelay,
  sleep,
  type Backoff,
  type ConnectionListeners,
  type ExecutionPayload,
} from "./realtime.js";
import type {
  AggregateOptions,
  AggregateResult,
  AnySchema,
  ChangeEvent,
  Column,
  DeleteOptions,
  InsertOptions,
  LiveOptions,
  SchemaOf,
  SelectOptions,
  SubscribeOptions,
  Unsubscribe,
  UpdateOptions,
  Where,
} from "./types.js";

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
export function endpoints(url: string): { http: string; ws: string } {
  const parsed = new URL(url);
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  let path = parsed.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/graphql")) path += "/graphql";
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
export function createClient<DB extends SchemaOf<DB> = AnySchema>(url: string, options: ClientOptions = {}): Client<DB> {
  return new Client<DB>(url, options);
}

export class Client<DB extends SchemaOf<DB> = AnySchema> {
  readonly httpUrl: string;
  readonly wsUrl: string;
  /** The one WebSocket of this client (opened by the first subscription). */
  readonly realtime: Realtime;
  readonly backoff: Backoff;
  private readonly options: ClientOptions;
  private readonly columnCache = new Map<string, Promise<string[]>>();
  private readonly open = new Set<() => void>();

  constructor(url: string, options: ClientOptions = {}) {
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

  table<K extends keyof DB & string>(name: K): Table<DB[K]> {
    return new Table(this, documents.checkedName(name));
  }

  /** The credentials of a request or a socket, asking `getToken` afresh. */
  async headers(): Promise<Record<string, string>> {
    const headers: Record<string, string> = { ...this.options.headers };
    const token = this.options.getToken ? await this.options.getToken() : this.options.token;
    if (token) headers["Authorization"] = `Bearer ${token}`;
    if (this.options.adminSecret !== undefined) headers["X-Admin-Secret"] = this.options.adminSecret;
    return headers;
  }

  /** Run any GraphQL query or mutation; its `data`, or a thrown ForgegraphError. */
  async execute<T = Json>(query: string, variables?: Json): Promise<T> {
    const fetcher = this.options.fetch ?? globalThis.fetch;
    const body: Json = { query };
    if (variables && Object.keys(variables).length) body.variables = variables;
    let response: Response;
    try {
      response = await fetcher(this.httpUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", ...(await this.headers()) },
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw new ConnectionFailed(`cannot reach ${this.httpUrl}: ${(error as Error)?.message ?? error}`);
    }
    let payload: ExecutionPayload;
    try {
      payload = (await response.json()) as ExecutionPayload;
    } catch {
      throw new ForgegraphError(`${this.httpUrl} answered ${response.status} with a body that is not JSON`);
    }
    if (payload?.errors?.length) throw ForgegraphError.fromGraphQL(payload.errors);
    if (!response.ok || typeof payload?.data !== "object" || payload.data === null) {
      throw new ForgegraphError(`${this.httpUrl} answered ${response.status} without data`);
    }
    return payload.data as T;
  }

  /** The newest change cursor now: a subscription with `since` set to it misses nothing after. */
  async changeCursor(): Promise<string> {
    const data = await this.execute<{ changeCursor: string }>(documents.CHANGE_CURSOR);
    return String(data.changeCursor);
  }

  /** The table's columns this client's role may read (learned once, by introspection). */
  columns(table: string): Promise<string[]> {
    let known = this.columnCache.get(table);
    if (!known) {
      known = this.introspect(table);
      this.columnCache.set(table, known);
      known.catch(() => this.columnCache.delete(table));
    }
    return known;
  }

  private async introspect(table: string): Promise<string[]> {
    type Field = { name: string; type: { kind: string; ofType?: { kind: string } | null } };
    const data = await this.execute<{ __type: { fields: Field[] | null } | null }>(documents.TABLE_FIELDS, { name: table });
    const fields = data.__type?.fields;
    if (!fields?.length) {
      throw new ForgegraphError(`table ${JSON.stringify(table)} does not exist or is not available to this role`, "validation-failed");
    }
    const leaf = (t: Field["type"]) => (t.kind === "NON_NULL" ? t.ofType?.kind : t.kind);
    return fields.filter((f) => leaf(f.type) === "SCALAR" || leaf(f.type) === "ENUM").map((f) => f.name);
  }

  /** Keep `stop` until it is called or the client closes; returns `stop`, untracking itself. */
  track(stop: () => void): () => void {
    const tracked = () => {
      this.open.delete(tracked);
      stop();
    };
    this.open.add(tracked);
    return tracked;
  }

  /** End every subscription and live query, and close the socket. */
  async close(): Promise<void> {
    for (const stop of [...this.open]) stop();
    await this.realtime.close();
  }
}

/** A table's three shapes, as `SchemaOf` checks them. */
export type TableLike = { Row: object; Insert: object; Update: object };
type AnyTable = AnySchema[string];

function defined(values: Json): Json {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

/** One table of the server: `db.table("posts")`. */
export class Table<T extends TableLike = AnyTable> {
  constructor(
    readonly client: Client<any>, // eslint-disable-line @typescript-eslint/no-explicit-any
    readonly name: string,
  ) {}

  private columns(columns?: readonly string[]): Promise<readonly string[]> | readonly string[] {
    return columns ?? this.client.columns(this.name);
  }

  /** Rows; `where` and `orderBy` in the Hasura dialect (`{id: {_gt: 3}}`, `{id: "desc"}`). */
  async select(options: SelectOptions<T["Row"]> = {}): Promise<T["Row"][]> {
    const variables = defined({
      where: options.where,
      order_by: options.orderBy,
      limit: options.limit,
      offset: options.offset,
    });
    const query = documents.select(this.name, await this.columns(options.columns), variables);
    const data = await this.client.execute<Record<string, T["Row"][]>>(query, variables);
    return data[this.name];
  }

  /** The row whose primary key is `pk` (`{id: 3}`), or null. */
  async byPk(pk: Partial<T["Row"]>, options: { columns?: Column<T["Row"]>[] } = {}): Promise<T["Row"] | null> {
    const where = Object.fromEntries(Object.entries(pk).map(([k, v]) => [k, { _eq: v }]));
    const rows = await this.select({ where: where as Where<T["Row"]>, limit: 1, columns: options.columns });
    return rows[0] ?? null;
  }

  /** Insert one row or several, in one transaction; the rows as stored. */
  async insert(objects: T["Insert"] | T["Insert"][], options: InsertOptions<T["Row"]> = {}): Promise<T["Row"][]> {
    const variables = defined({
      objects: Array.isArray(objects) ? objects : [objects],
      on_conflict: options.onConflict && { update_columns: [], ...options.onConflict },
    });
    const query = documents.insert(this.name, await this.columns(options.returning), variables);
    return this.mutate(`insert_${this.name}`, query, variables);
  }

  /** Set `set` (and add `inc`) on every row matching `where`; the rows after the change. */
  async update(where: Where<T["Row"]>, set: T["Update"], options: UpdateOptions<T["Row"]> = {}): Promise<T["Row"][]> {
    const variables = defined({ where, _set: set, _inc: options.inc });
    const query = documents.update(this.name, await this.columns(options.returning), variables);
    return this.mutate(`update_${this.name}`, query, variables);
  }

  /** Update the row whose primary key is `pk`; the row after the change, or null when there is none. */
  async updateByPk(pk: Partial<T["Row"]>, set: T["Update"], options: UpdateOptions<T["Row"]> = {}): Promise<T["Row"] | null> {
    const where = Object.fromEntries(Object.entries(pk).map(([k, v]) => [k, { _eq: v }]));
    const rows = await this.update(where as Where<T["Row"]>, set, options);
    return rows[0] ?? null;
  }

  /** Delete every row matching `where` (`{}` matches all); the rows as they were. */
  async delete(where: Where<T["Row"]>, options: DeleteOptions<T["Row"]> = {}): Promise<T["Row"][]> {
    const query = documents.remove(this.name, await this.columns(options.returning));
    return this.mutate(`delete_${this.name}`, query, { where });
  }

  /** `count` (default), `sum`, `avg`, `min`, `max`, ... of the rows matching `where`. */
  async aggregate(options: AggregateOptions<T["Row"]> = {}): Promise<AggregateResult<T["Row"]>> {
    const { where, ...request } = options;
    const variables = defined({ where });
    const query = documents.aggregate(this.name, request as documents.AggregateRequest, variables);
    const data = await this.client.execute<Record<string, { aggregate: AggregateResult<T["Row"]> }>>(query, variables);
    return data[`${this.name}_aggregate`].aggregate;
  }

  private async mutate(field: string, query: string, variables: Json): Promise<T["Row"][]> {
    const data = await this.client.execute<Record<string, { returning: T["Row"][] }>>(query, variables);
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
  subscribe(callback: (event: ChangeEvent<T["Row"]>) => unknown, options: SubscribeOptions<T["Row"]> = {}): Unsubscribe {
    const subscription = new ChangeSubscription<T["Row"]>(this.client, this.name, callback, options);
    const stop = this.client.track(() => subscription.stop());
    const unsubscribe = (() => stop()) as Unsubscribe;
    Object.defineProperty(unsubscribe, "cursor", { get: () => subscription.cursor });
    Object.defineProperty(unsubscribe, "ready", { value: subscription.ready });
    return unsubscribe;
  }

  /**
   * A live query: `callback(rows)` with the result of `select(options)` at once,
   * and again whenever a committed change alters it. Returns `unsubscribe()`.
   */
  live(options: LiveOptions<T["Row"]>, callback: (rows: T["Row"][]) => unknown): () => void {
    let stopped = false;
    let dispose: (() => void) | null = null;
    const onError = options.onError ?? ((error: Error) => console.error(`forgegraph: live query on ${this.name} ended:`, error));
    const variables = defined({
      where: options.where,
      order_by: options.orderBy,
      limit: options.limit,
      offset: options.offset,
    });
    (async () => {
      const columns = await this.columns(options.columns);
      if (stopped) return;
      const query = documents.select(this.name, columns, variables, "subscription");
      dispose = this.client.realtime.subscribe(
        { query, variables },
        {
          next: (result) => {
            if (stopped) return;
            if (result.errors?.length) {
              stopped = true;
              dispose?.();
              onError(ForgegraphError.fromGraphQL(result.errors));
              return;
            }
            const rows = (result.data?.[this.name] ?? []) as T["Row"][];
            try {
              callback(rows);
            } catch (error) {
              console.error(`forgegraph: a live query callback for ${this.name} threw`, error);
            }
          },
          error: (error) => {
            if (stopped) return;
            stopped = true;
            onError(asError(error));
          },
          complete: () => {},
        },
      );
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
class ChangeSubscription<Row> {
  /** The last cursor delivered (as a number, for ordering). */
  private last: bigint | null = null;
  private lastText: string | null = null;
  private stopped = false;
  private dispose: (() => void) | null = null;
  private delivering: Promise<void> = Promise.resolve();
  private readonly payload: { query: string; variables: Json };
  readonly ready: Promise<void>;

  constructor(
    private readonly client: Client<any>, // eslint-disable-line @typescript-eslint/no-explicit-any
    table: string,
    private readonly callback: (event: ChangeEvent<Row>) => unknown,
    private readonly options: SubscribeOptions<Row>,
  ) {
    // graphql-ws sends this same object again on every reconnect: moving
    // `since` on in it is what makes a resubscribe resume after the last event.
    this.payload = { query: documents.TABLE_CHANGED, variables: defined({ table, where: options.where }) };
    this.ready = this.start();
    this.ready.catch(() => {});
  }

  get cursor(): string | null {
    return this.lastText ?? (this.payload.variables.since as string | undefined) ?? null;
  }

  private async start(): Promise<void> {
    let since = this.options.since;
    if (since === undefined) {
      // A cursor from the start, not from the first event: a drop before that
      // event then resumes from here and loses nothing.
      since = await this.startingCursor();
    }
    if (this.stopped) return;
    this.payload.variables.since = since;
    try {
      this.dispose = this.client.realtime.subscribe(this.payload, {
        next: (result) => this.next(result),
        error: (error) => this.fail(asError(error)),
        complete: () => {
          this.stopped = true;
        },
      });
    } catch (error) {
      // No WebSocket implementation (Node 20 without `webSocketImpl`), a bad URL...
      const failure = new ForgegraphError((error as Error)?.message ?? String(error));
      this.fail(failure);
      throw failure;
    }
  }

  /** `changeCursor`, retried while the server cannot be reached; other errors end the subscription. */
  private async startingCursor(): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.client.changeCursor();
      } catch (error) {
        if (!(error instanceof ConnectionFailed) || this.stopped) {
          this.fail(error as Error);
          throw error;
        }
        await sleep(backoffDelay(this.client.backoff, attempt));
      }
    }
  }

  private next(result: ExecutionPayload): void {
    if (this.stopped) return;
    if (result.errors?.length) {
      this.fail(ForgegraphError.fromGraphQL(result.errors));
      return;
    }
    const data = result.data?.tableChanged as Json | undefined;
    if (!data) return;
    const cursor = String(data.cursor);
    if (!/^\d+$/.test(cursor)) {
      // A throw here would make graphql-ws close the socket shared by every subscription.
      this.fail(new ForgegraphError(`the server sent a cursor that is not decimal digits: ${JSON.stringify(cursor)}`));
      return;
    }
    const position = BigInt(cursor);
    if (this.last !== null && position <= this.last) return; // seen before: a replay overlapping a delivery
    this.last = position;
    this.lastText = cursor;
    this.payload.variables.since = cursor;
    const event: ChangeEvent<Row> = {
      type: data.type as ChangeEvent["type"],
      table: data.table as string,
      record: (data.record ?? null) as Row | null,
      id: data.id ?? null,
      cursor,
      old_record: (data.old_record ?? null) as Partial<Row> | null,
    };
    // In order, one at a time, also for async callbacks; a throwing callback stops nothing.
    this.delivering = this.delivering.then(async () => {
      if (this.stopped) return;
      try {
        await this.callback(event);
      } catch (error) {
        console.error(`forgegraph: a callback threw on cursor ${cursor}`, error);
      }
    });
  }

  private fail(error: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.dispose?.();
    const report = this.options.onError ?? ((e: Error) => console.error("forgegraph: subscription ended:", e));
    // After the events already queued for the callback.
    this.delivering = this.delivering.then(() => report(error));
  }

  stop(): void {
    this.stopped = true;
    this.dispose?.();
    this.dispose = null;
  }
}
