/**
 * The typing contract: `forgegraph export-types --lang ts` prints a `Database`
 * of this shape, and `createClient<Database>(...)` types every table from it.
 */
export interface TableTypes {
    Row: Record<string, unknown>;
    Insert: Record<string, unknown>;
    Update: Record<string, unknown>;
}
export type Schema = {
    [table: string]: TableTypes;
};
/**
 * What `createClient<DB>` accepts: `Schema`, and also a generated
 * `interface Database { ... }` (interfaces have no index signature, so they
 * are checked table by table).
 */
export type SchemaOf<DB> = {
    [K in keyof DB]: {
        Row: object;
        Insert: object;
        Update: object;
    };
};
/** Without generated types: any table, any column, rows of `any` values. */
export type AnySchema = {
    [table: string]: {
        Row: Record<string, any>;
        Insert: Record<string, any>;
        Update: Record<string, any>;
    };
};
type Loose<Row> = string extends keyof Row ? true : false;
/** The comparison operators of a column (`posts_bool_exp`'s per-column `*_comparison_exp`). */
export interface Comparison<T> {
    _eq?: T;
    _neq?: T;
    _gt?: T;
    _gte?: T;
    _lt?: T;
    _lte?: T;
    _in?: T[];
    _nin?: T[];
    _is_null?: boolean;
    _like?: string;
    _nlike?: string;
    _ilike?: string;
    _nilike?: string;
    _contains?: unknown;
    _contained_in?: unknown;
    _has_key?: string;
    _has_keys_any?: string[];
    _has_keys_all?: string[];
}
/** A row filter in the Hasura dialect, typed per column: a misspelt column does not compile. */
export type Where<Row> = Loose<Row> extends true ? Record<string, any> : {
    [C in keyof Row]?: Comparison<NonNullable<Row[C]>>;
} & {
    _and?: Where<Row>[];
    _or?: Where<Row>[];
    _not?: Where<Row>;
};
export type OrderDirection = "asc" | "desc" | "asc_nulls_first" | "asc_nulls_last" | "desc_nulls_first" | "desc_nulls_last";
export type OrderBy<Row> = Loose<Row> extends true ? Record<string, any> : {
    [C in keyof Row]?: OrderDirection;
};
export type Column<Row> = keyof Row & string;
export interface SelectOptions<Row> {
    where?: Where<Row>;
    orderBy?: OrderBy<Row> | OrderBy<Row>[];
    limit?: number;
    offset?: number;
    /** Which columns to read; default: every column the role may see (learned once by introspection). */
    columns?: Column<Row>[];
}
export interface OnConflict<Row> {
    /** A `t_constraint` value: the primary key's or a unique constraint's name (`posts_pkey`). */
    constraint: string;
    /** Columns to update from the proposed row when it conflicts; `[]` (default): do nothing. */
    update_columns?: Column<Row>[];
    where?: Where<Row>;
}
export interface InsertOptions<Row> {
    /** The columns of the returned rows; default: every column the role may see. */
    returning?: Column<Row>[];
    onConflict?: OnConflict<Row>;
}
export interface UpdateOptions<Row> {
    /** Numbers to add (`_inc`): `{views: 1}`. */
    inc?: Loose<Row> extends true ? Record<string, number> : {
        [C in keyof Row]?: number;
    };
    returning?: Column<Row>[];
}
export interface DeleteOptions<Row> {
    returning?: Column<Row>[];
}
type NumericColumns<Row> = Column<Row>[];
export interface AggregateOptions<Row> {
    where?: Where<Row>;
    /** `true` (default when nothing else is asked) for `count`, or `{columns, distinct}`. */
    count?: boolean | {
        columns?: Column<Row>[];
        distinct?: boolean;
    };
    sum?: NumericColumns<Row>;
    avg?: NumericColumns<Row>;
    min?: Column<Row>[];
    max?: Column<Row>[];
    stddev?: NumericColumns<Row>;
    stddev_pop?: NumericColumns<Row>;
    stddev_samp?: NumericColumns<Row>;
    var_pop?: NumericColumns<Row>;
    var_samp?: NumericColumns<Row>;
    variance?: NumericColumns<Row>;
}
type Of<Row, T> = Loose<Row> extends true ? Record<string, any> : {
    [C in keyof Row]?: T;
};
export interface AggregateResult<Row> {
    count?: number;
    sum?: Of<Row, number | string | null>;
    avg?: Of<Row, number | null>;
    min?: Loose<Row> extends true ? Record<string, unknown> : {
        [C in keyof Row]?: Row[C] | null;
    };
    max?: Loose<Row> extends true ? Record<string, unknown> : {
        [C in keyof Row]?: Row[C] | null;
    };
    stddev?: Of<Row, number | null>;
    stddev_pop?: Of<Row, number | null>;
    stddev_samp?: Of<Row, number | null>;
    var_pop?: Of<Row, number | null>;
    var_samp?: Of<Row, number | null>;
    variance?: Of<Row, number | null>;
}
export type ChangeType = "create" | "update" | "delete";
/** One committed row change (SPEC section 5's `TableChange`), the seed's event plus `cursor` and `old_record`. */
export interface ChangeEvent<Row = Record<string, unknown>> {
    type: ChangeType;
    table: string;
    /** The row after the change; null on delete. */
    record: Row | null;
    /** The primary key value; an object for composite keys; null when the role may not select every key column. */
    id: unknown;
    /** Decimal digits, strictly increasing: resume after this event with `since`. */
    cursor: string;
    /** The row before the change (update, delete), where the role may see it; null on create. */
    old_record: Partial<Row> | null;
}
export interface SubscribeOptions<Row> {
    /** Only changes of rows matching this filter (a row leaving it arrives as `delete`, entering as `create`). */
    where?: Where<Row>;
    /** Replay the retained events after this cursor first (`"0"`: everything retained). */
    since?: string;
    /** Called once with the error that ended the subscription (default: console.error). */
    onError?: (error: Error) => void;
}
/** Stops a subscription: no event is delivered after it returns. */
export interface Unsubscribe {
    (): void;
    /** The cursor the subscription would resume after (the last event delivered), or null. */
    readonly cursor: string | null;
    /**
     * Resolves once the subscription's starting cursor is fixed (read with
     * `changeCursor`, retried while the server cannot be reached): every change
     * committed after that is delivered. Rejects, as `onError` is called, when
     * the cursor cannot be read (an invalid token...) or no socket can be made.
     * A table or filter the server refuses goes to `onError` only.
     */
    readonly ready: Promise<void>;
}
export interface LiveOptions<Row> extends SelectOptions<Row> {
    onError?: (error: Error) => void;
}
export {};
