/**
 * GraphQL documents for one table, in SPEC section 4's naming.
 *
 * Only names are written into a document, and only names checked against the
 * GraphQL grammar; every value travels as a variable.
 */

const NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;

export const CHANGE_FIELDS = "type table id record old_record cursor";

export const TABLE_CHANGED =
  "subscription ($table: String!, $where: JSON, $since: String) {\n" +
  `  tableChanged(table: $table, where: $where, since: $since) { ${CHANGE_FIELDS} }\n` +
  "}";

/** The newest cursor now (SPEC section 5): where a first subscribe starts, so it has no gap. */
export const CHANGE_CURSOR = "query { changeCursor }";

/** A table's fields, with enough of their type to tell columns from relationships. */
export const TABLE_FIELDS =
  "query ($name: String!) {\n  __type(name: $name) { fields { name type { kind ofType { kind } } } }\n}";

export function checkedName(name: string, what = "table"): string {
  if (typeof name !== "string" || !NAME.test(name) || name.startsWith("__")) {
    throw new TypeError(`${JSON.stringify(name)} is not a valid GraphQL name for a ${what}`);
  }
  return name;
}

function selection(columns: readonly string[]): string {
  if (columns.length === 0) throw new TypeError("select at least one column");
  return columns.map((c) => checkedName(c, "column")).join(" ");
}

function declare(types: Record<string, string>, given: Record<string, unknown>): [string, string] {
  const names = Object.keys(types).filter((n) => given[n] !== undefined);
  const declared = names.map((n) => `$${n}: ${types[n]}`).join(", ");
  const passed = names.map((n) => `${n}: $${n}`).join(", ");
  return [declared ? `(${declared})` : "", passed ? `(${passed})` : ""];
}

function readArguments(table: string): Record<string, string> {
  return {
    where: `${table}_bool_exp`,
    order_by: `[${table}_order_by!]`,
    limit: "Int",
    offset: "Int",
  };
}

/** `table(where:, order_by:, limit:, offset:)`, declaring only the arguments given. */
export function select(table: string, columns: readonly string[], given: Record<string, unknown>, operation = "query"): string {
  const [declared, passed] = declare(readArguments(table), given);
  return `${operation} ${declared} { ${table}${passed} { ${selection(columns)} } }`;
}

export function insert(table: string, columns: readonly string[], given: Record<string, unknown>): string {
  const [declared, passed] = declare(
    { objects: `[${table}_insert_input!]!`, on_conflict: `${table}_on_conflict` },
    given,
  );
  return `mutation ${declared} { insert_${table}${passed} { returning { ${selection(columns)} } } }`;
}

export function update(table: string, columns: readonly string[], given: Record<string, unknown>): string {
  const types = { where: `${table}_bool_exp!`, _set: `${table}_set_input`, _inc: `${table}_inc_input` };
  const [declared, passed] = declare(types, given);
  return `mutation ${declared} { update_${table}${passed} { returning { ${selection(columns)} } } }`;
}

export function remove(table: string, columns: readonly string[]): string {
  return (
    `mutation ($where: ${table}_bool_exp!) ` +
    `{ delete_${table}(where: $where) { returning { ${selection(columns)} } } }`
  );
}

const COLUMN_AGGREGATES = [
  "sum", "avg", "min", "max", "stddev", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "variance",
] as const;

export interface AggregateRequest {
  count?: boolean | { columns?: string[]; distinct?: boolean };
  [fn: string]: unknown;
}

/** `table_aggregate(where:) { aggregate { count ... sum { a b } ... } }`. */
export function aggregate(table: string, request: AggregateRequest, given: Record<string, unknown>): string {
  const [declared, passed] = declare({ where: `${table}_bool_exp` }, given);
  const fields: string[] = [];
  const asked = COLUMN_AGGREGATES.filter((fn) => request[fn] !== undefined);
  let count = request.count;
  if (count === undefined && asked.length === 0) count = true;
  if (count === true) fields.push("count");
  else if (typeof count === "object" && count !== null) {
    // Only names go into the document: `columns` are checked names, `distinct` a boolean literal.
    const args: string[] = [];
    if (count.columns?.length) args.push(`columns: [${count.columns.map((c) => checkedName(c, "column")).join(", ")}]`);
    if (count.distinct !== undefined) args.push(`distinct: ${count.distinct ? "true" : "false"}`);
    fields.push(args.length ? `count(${args.join(", ")})` : "count");
  }
  for (const fn of asked) {
    const columns = request[fn];
    if (!Array.isArray(columns)) throw new TypeError(`aggregate ${fn}: expected a list of columns`);
    fields.push(`${fn} { ${selection(columns as string[])} }`);
  }
  return `query ${declared} { ${table}_aggregate${passed} { aggregate { ${fields.join(" ")} } } }`;
}
