/**
 * GraphQL documents for one table, in SPEC section 4's naming.
 *
 * Only names are written into a document, and only names checked against the
 * GraphQL grammar; every value travels as a variable.
 */
export declare const CHANGE_FIELDS = "type table id record old_record cursor";
export declare const TABLE_CHANGED: string;
/** The newest cursor now (SPEC section 5): where a first subscribe starts, so it has no gap. */
export declare const CHANGE_CURSOR = "query { changeCursor }";
/** A table's fields, with enough of their type to tell columns from relationships. */
export declare const TABLE_FIELDS = "query ($name: String!) {\n  __type(name: $name) { fields { name type { kind ofType { kind } } } }\n}";
export declare function checkedName(name: string, what?: string): string;
/** `table(where:, order_by:, limit:, offset:)`, declaring only the arguments given. */
export declare function select(table: string, columns: readonly string[], given: Record<string, unknown>, operation?: string): string;
export declare function insert(table: string, columns: readonly string[], given: Record<string, unknown>): string;
export declare function update(table: string, columns: readonly string[], given: Record<string, unknown>): string;
export declare function remove(table: string, columns: readonly string[]): string;
export interface AggregateRequest {
    count?: boolean | {
        columns?: string[];
        distinct?: boolean;
    };
    [fn: string]: unknown;
}
/** `table_aggregate(where:) { aggregate { count ... sum { a b } ... } }`. */
export declare function aggregate(table: string, request: AggregateRequest, given: Record<string, unknown>): string;
