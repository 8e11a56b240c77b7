"""The statements of each generated mutation field, as one `Job` for a driver.

The same steps as the resolvers took, in the same order and with the same
statements' meaning: presets, the write with RETURNING, the permission check
over the written rows, the rows `returning` may show, and their
relationships (`_mutation_related`). Each INSERT is compiled once per table
and set of columns; the other statements are built by SQLAlchemy per
request and compiled once per shape. The rules' conditions are the role's
(graph.access.RoleAccess), compiled once: each statement binds their session
variables to the request's session values (`SessionAccess.parameters`).
An insert's objects may insert rows through relationships (nested inserts,
`_mutation_nested`): each of those rows takes the same steps for its own
table (`Writes._insert_tree`), in the same transaction.

A root field that fails is an error at its path, and the next root field
runs all the same, in the same transaction, as graphql-core runs them (on
PostgreSQL the statements after a failed one fail too, SQLSTATE 25P02;
`graph.compile.mutation` leaves those errors out). Once any field failed the
job raises `FieldErrors`, so that the driver rolls the transaction back.
A custom root field (graph.extend) is a step the driver awaits in the same
transaction (`Awaited`, graph.compile.custom); its errors count as any field's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as default
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from graphql import located_error
from sqlalchemy.dialects import postgresql, sqlite

from graph import inflection
from graph.compile import _mutation_nested as nested
from graph.compile._mutation_fields import (
    CUSTOM,
    DELETE_BY_PK,
    INSERT,
    INSERT_ONE,
    TYPENAME,
    UPDATE,
    UPDATE_BY_PK,
    UPDATE_MANY,
    MutationField,
    MutationOperation,
    Nulled,
    Picker,
)
from graph.compile._mutation_related import RelatedReader
from graph.dialect import Awaited
from graph.errors import PermissionDenied, ValidationFailed
from graph.model import Kind
from graph.schema import INCREMENTS, PLACEHOLDER
from graph.sql import json_edits
from graph.sql.values import INT32, INT64, to_db, to_stored

if TYPE_CHECKING:
    from graphql import ExecutionResult, GraphQLError, GraphQLSchema
    from graphql.execution.values import VariableValues

    from graph.access import SessionAccess
    from graph.compile._query_backend import Backend
    from graph.dialect import Execute, Job, Rows
    from graph.model import DatabaseModel, Table
    from graph.rules.to_sql import Condition
    from graph.sql.compiled import Compiled, Statement, Statements
    from graph.sql.select import Reader

Steps = Generator["Statement | Awaited", Any, Any]
Row = Sequence[Any]
Key = tuple[Any, ...]
# What an integer column may hold after `_inc`: GraphQL's Int is 32 bits (graph.sql.values.to_stored).
INT_RANGES = {Kind.INTEGER: INT32, Kind.BIGINT: INT64}
JSON_EDITS = ("_append", "_prepend", "_delete_key", "_delete_elem", "_delete_at_path")
UPDATE_OPERATORS = ("_set", "_inc", *JSON_EDITS)


class FieldErrors(Exception):
    """Root fields failed: the transaction is rolled back, and these errors are the answer."""

    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__(f"{len(errors)} field error(s)")
        self.errors = errors


@dataclass
class Request:
    """One request's mutation: its plan, coerced values and session, and how far its job got."""

    schema: GraphQLSchema
    plan: MutationOperation
    arguments: Sequence[Mapping[str, Any] | Exception]
    """Per root field, its coerced arguments, or graphql-core's error coercing them."""
    variables: VariableValues
    access: SessionAccess
    current: MutationField | None = default(default=None)
    """The root field the job is running (an error outside its statements is this field's)."""
    returned: bool = default(default=False)
    """The job returned its answer: what fails after that is the COMMIT."""
    custom: Callable[[MutationField, Execute], Awaitable[ExecutionResult]] | None = default(default=None)
    """Runs a custom root field in the transaction (graph.compile.custom); None: the document has none."""


PREPARED_UPDATES = 1024
"""Update statements kept compiled, by table, columns and role."""


class Writes:
    def __init__(
        self,
        model: DatabaseModel,
        tables: Mapping[str, sa.Table],
        reader: Reader,
        statements: Statements,
        backend: Backend | None,
    ) -> None:
        self.model = model
        self.tables = tables
        self.reader = reader
        self.statements = statements
        self.related = RelatedReader(backend, reader, tables, statements)
        self._inserts: dict[tuple[str, tuple[str, ...]], Compiled] = {}
        self._updates: dict[tuple[Any, ...], Compiled] = {}
        self._key_positions: dict[str, tuple[int, ...]] = {}

    def job(self, request: Request) -> Job[dict[str, Any]]:
        """The request's fields, in order, in one transaction; returns the `data` of the answer."""

        def run() -> Steps:
            request.returned = False
            if request.access.written is not None:
                request.access.written.clear()  # a job run again (SQLite: it found the database locked)
            errors: list[GraphQLError] = []
            data: dict[str, Any] = {}
            for field, args in zip(request.plan.fields, request.arguments, strict=True):
                request.current = field
                if field.kind == TYPENAME:
                    data[field.key] = field.typename
                    continue
                try:
                    if field.kind == CUSTOM:
                        data[field.key] = yield from self._custom(field, request, errors)
                        continue
                    if isinstance(args, Exception):
                        raise args
                    data[field.key] = yield from self._field(field, args, request, errors)
                except Nulled as nulled:
                    errors.append(nulled.error)
                    data[field.key] = None
                except Exception as error:  # noqa: BLE001 - the field's error; the next field runs all the same
                    errors.append(located_error(error, list(field.nodes), [field.key]))
                    data[field.key] = None
            if errors:
                raise FieldErrors(errors)
            request.returned = True
            return data

        return run

    def _custom(self, field: MutationField, request: Request, errors: list[GraphQLError]) -> Steps:
        """A custom field's value, its resolver awaited by the driver in the transaction."""
        custom = request.custom
        if custom is None:
            raise RuntimeError("a custom mutation field without a runner")

        def run(execute: Execute) -> Awaitable[ExecutionResult]:
            return custom(field, execute)

        result: ExecutionResult = yield Awaited(run)
        errors.extend(result.errors or ())
        return (result.data or {}).get(field.key)

    def _field(
        self, field: MutationField, args: Mapping[str, Any], request: Request, errors: list[GraphQLError]
    ) -> Steps:
        table = field.table
        access = request.access
        assert table is not None
        shown: list[Row] | None = None
        affected: int | None = None
        if field.kind in (INSERT, INSERT_ONE):
            objects = args["objects"] if field.kind == INSERT else [args["object"]]
            rows, _, affected = yield from self._insert_tree(table, objects, args.get("on_conflict"), access)
        elif field.kind == UPDATE_MANY:
            # Each entry in order, each seeing what the ones before wrote, in the request's transaction.
            answers: list[dict[str, Any]] = []
            for n, entry in enumerate(args["updates"]):
                where = self.reader.where(table.name, entry["where"], access.rules.select_filter)
                rows = yield from self._update(table, where, entry, access)
                answers.append((yield from self._response(field, table, rows, None, request, errors, [n])))
            return answers
        elif field.kind == UPDATE_BY_PK:
            rows = yield from self._update(table, args["pk_columns"], args, access)
        elif field.kind == UPDATE:
            where = self.reader.where(table.name, args["where"], access.rules.select_filter)
            rows = yield from self._update(table, where, args, access)
        else:
            if field.kind == DELETE_BY_PK:
                where = self.reader.pk_condition(table, args)
            else:
                where = self.reader.where(table.name, args["where"], access.rules.select_filter)
            rows, shown = yield from self._delete(table, where, access)
        if field.one is not None:
            if shown is None:
                shown = yield from self._visible(table, rows[:1], access)
            if not shown:
                return None
            related = yield from self._related(field.one, shown[:1], request)
            return field.one.pick(shown[0], related[0], [field.key], errors)
        return (yield from self._response(field, table, rows, shown, request, errors, [], affected))

    def _response(
        self,
        field: MutationField,
        table: Table,
        rows: list[Row],
        shown: list[Row] | None,
        request: Request,
        errors: list[GraphQLError],
        at: list[int],
        affected: int | None = None,
    ) -> Steps:
        """A `t_mutation_response` over the written rows (`at`: its index in update_many's list).

        `affected`: the rows written, when more than `rows` (a nested insert counts its whole tree).
        """
        access = request.access
        # Everything read first, then completed: graphql-core completes what the resolver returned.
        read: list[tuple[list[Row], list[Mapping[str, Any] | None]]] = []
        for part in field.response:
            if part.returning is not None:
                if shown is None:
                    shown = yield from self._visible(table, rows, access)
                read.append((shown, (yield from self._related(part.returning, shown, request))))
        out: dict[str, Any] = {}
        returned = iter(read)
        for part in field.response:
            if part.name == "affected_rows":
                out[part.key] = len(rows) if affected is None else affected
            elif part.name == TYPENAME:
                out[part.key] = inflection.inflection_of(self.model).mutation_response(table.name)
            else:
                assert part.returning is not None
                listed, related = next(returned)
                path: list[str | int] = [field.key, *at, part.key]
                out[part.key] = [
                    part.returning.pick(row, found, [*path, n], errors)
                    for n, (row, found) in enumerate(zip(listed, related, strict=True))
                ]
        return out

    def _related(self, picker: Picker, rows: list[Row], request: Request) -> Steps:
        """Per row, its relationships' answers (None each when the selection has none)."""
        if not picker.related:
            return [None] * len(rows)
        return (
            yield from self.related.read(
                request.schema,
                request.plan.fragments,
                request.variables,
                picker.table,
                list(picker.nodes),
                rows,
                request.access.rules.select_filter,
                request.access.parameters,
            )
        )

    # -- the writes ------------------------------------------------------------

    def _values(self, table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
        dialect = self.model.dialect
        return {name: to_stored(table.column(name), value, dialect) for name, value in values.items()}

    def _compiled_insert(self, table: Table, names: tuple[str, ...]) -> Compiled:
        compiled = self._inserts.get((table.name, names))
        if compiled is None:
            core = self.tables[table.name]
            statement = sa.insert(core).returning(*core.c)
            compiled = self.statements.prepare(statement, column_keys=names)
            self._inserts[(table.name, names)] = compiled
        return compiled

    def _insert_tree(
        self,
        table: Table,
        objects: Sequence[Mapping[str, Any]],
        on_conflict: Mapping[str, Any] | None,
        access: SessionAccess,
        links: Sequence[Mapping[str, Any]] | None = None,
    ) -> Steps:
        """Insert `objects` and the rows they insert through relationships (`_mutation_nested`).

        Objects that insert nothing through a relationship are written
        together; otherwise object by object, as Hasura writes them (the same
        ids, the same order of events): the rows of each object relationship
        (with their own trees), then the object's row with their keys in its
        foreign keys, then each array relationship's rows with its key in
        theirs. Every row is a plain insert or an upsert of its table, with
        the role's presets and check for that table. `links`: per object, the
        (stored) values of the columns its parent's relationship sets.
        Returns the rows in the answer's order, per object its row (None where
        an upsert left it alone), and how many rows the whole tree wrote.
        """
        if links is None and not nested.has_nested(table, objects):
            # Most inserts: rows of one table, written together as they are.
            rows, aligned = yield from self._level(table, objects, on_conflict, access, [{}] * len(objects))
            return rows, aligned, len(rows)
        links = links if links is not None else [{}] * len(objects)
        relationships = table.relationships_by_name
        read = [
            nested.read_object(table, relationships, obj, link.keys())
            for obj, link in zip(objects, links, strict=True)
        ]
        if not any(obj.parents or obj.children for obj in read):
            rows, aligned = yield from self._level(table, [obj.columns for obj in read], on_conflict, access, links)
            return rows, aligned, len(rows)
        if len(read) > 1:
            rows, aligned, affected = [], [], 0
            for given, link in zip(objects, links, strict=True):
                some, one, count = yield from self._insert_tree(table, [given], on_conflict, access, [link])
                rows.extend(some)
                aligned.extend(one)
                affected += count
            return rows, aligned, affected
        tree, own = read[0], dict(links[0])
        affected = 0
        for relationship, value in tree.parents:
            remote = self.model.table(relationship.remote_table)
            _, (parent,), count = yield from self._insert_tree(
                remote, [value["data"]], value.get("on_conflict"), access
            )
            if parent is None:
                raise ValidationFailed(
                    f'cannot proceed to insert object relation "{relationship.name}" since insert to'
                    f' table "{remote.name}" affects zero rows'
                )
            affected += count
            own.update(_linked(relationship.local_columns, remote, relationship.remote_columns, parent))
        rows, (row,) = yield from self._level(table, [tree.columns], on_conflict, access, [own])
        affected += len(rows)
        for relationship, value in tree.children:
            data = value["data"]
            if not data:
                continue
            if row is None:
                raise ValidationFailed(
                    f'cannot proceed to insert array relations since insert to table "{table.name}"'
                    f" affects zero rows"
                )
            remote = self.model.table(relationship.remote_table)
            key = _linked(relationship.remote_columns, table, relationship.local_columns, row)
            _, _, count = yield from self._insert_tree(
                remote, data, value.get("on_conflict"), access, [key] * len(data)
            )
            affected += count
        return rows, [row], affected

    def _level(
        self,
        table: Table,
        objects: Sequence[Mapping[str, Any]],
        on_conflict: Mapping[str, Any] | None,
        access: SessionAccess,
        links: Sequence[Mapping[str, Any]],
    ) -> Steps:
        if on_conflict is None:
            return (yield from self._insert(table, objects, access, links))
        return (yield from self._upsert(table, objects, on_conflict, access, links))

    def _insert(
        self,
        table: Table,
        objects: Sequence[Mapping[str, Any]],
        access: SessionAccess,
        links: Sequence[Mapping[str, Any]],
    ) -> Steps:
        """Plain INSERTs; the rows in the answer's order, and per object its row."""
        presets = access.insert_presets(table)
        # Grouped by the columns they name, in the order the answer returns them (the golden answers').
        groups: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
        for n, (obj, link) in enumerate(zip(objects, links, strict=True)):
            # A preset is the role's rule: not even a relationship's key overrides it.
            values = {**link, **self._values(table, {**obj, **presets})}
            groups.setdefault(tuple(values), []).append((n, values))
        rows: list[Row] = []
        aligned: list[Row | None] = [None] * len(objects)
        for names, group in groups.items():
            insert = self._compiled_insert(table, names)
            for n, values in group:
                found: Rows = yield insert.bind(values)
                rows.extend(found)
                aligned[n] = found[0] if found else None
        yield from self._check(table, access.rules.insert_check(table), rows, "insert", access)
        if access.written is not None:
            access.written.append((table, "create", rows))
        return rows, aligned

    def _upsert(
        self,
        table: Table,
        objects: Sequence[Mapping[str, Any]],
        on_conflict: Mapping[str, Any],
        access: SessionAccess,
        links: Sequence[Mapping[str, Any]],
    ) -> Steps:
        """INSERT ... ON CONFLICT, one statement per object, as Hasura's upsert.

        `update_columns: []` is DO NOTHING: a conflicting row is neither
        changed nor returned. Otherwise DO UPDATE sets the columns named (and
        the role's update presets) from the object, where the existing row
        passes both `where` and the role's update filter. Inserted rows pass
        the insert check, updated ones the update check.
        """
        names = on_conflict["constraint"]
        constraint = next(c for c in table.constraints if c.name == names)
        columns: list[str] = list(on_conflict.get("update_columns") or ())
        if PLACEHOLDER in columns:
            raise ValidationFailed(f"the role may update no column of {table.name!r}")
        core = self.tables[table.name]
        target = [core.c[name] for name in constraint.columns]
        presets = access.insert_presets(table)
        changes = self._values(table, access.update_presets(table)) if columns else {}
        condition: Condition | None = None
        if columns:
            given = on_conflict.get("where")
            if given is not None:
                condition = self.reader.where(table.name, given, access.rules.select_filter)
            allowed = access.rules.update_filter(table)
            if allowed is not None:
                condition = allowed if condition is None else sa.and_(condition, allowed)
            if condition is not None:
                condition = self._existing(table, condition)
        checks = access.rules.insert_check(table), access.rules.update_check(table)
        # Which rows were updated matters only to tell the two checks apart. PostgreSQL
        # tells (a row it inserted has xmax 0, as Hasura reads it); on SQLite a key
        # looked up first tells, and no other writer can come between the two.
        classify = bool(columns) and any(check is not None for check in checks)
        marked = classify and self.model.dialect == "postgresql"
        returning = [*core.c, sa.literal_column("(xmax = 0)", sa.Boolean)] if marked else list(core.c)
        rows: list[Row] = []  # in the objects' order, as a plain insert answers them
        aligned: list[Row | None] = []
        inserted: list[Row] = []
        updated: list[Row] = []
        for obj, link in zip(objects, links, strict=True):
            values = {**link, **self._values(table, {**obj, **presets})}
            existed = False
            if classify and not marked and all(values.get(name) is not None for name in constraint.columns):
                same = sa.and_(*(core.c[name] == values[name] for name in constraint.columns))
                existed = bool((yield from self._keys(table, same, None, access)))
            statement = _dialect_insert(self.model.dialect)(core).values(values)
            if columns:
                statement = statement.on_conflict_do_update(
                    index_elements=target,
                    set_={**{name: statement.excluded[name] for name in columns}, **changes},
                    where=condition,
                )
            else:
                statement = statement.on_conflict_do_nothing(index_elements=target)
            found: Rows = yield self.statements.bind(statement.returning(*returning), access.parameters)
            aligned.append(None)
            for row in found:
                if marked:
                    existed, row = not row[-1], tuple(row)[:-1]
                rows.append(row)
                aligned[-1] = row
                (updated if existed else inserted).append(row)
        yield from self._check(table, checks[0], inserted, "insert", access)
        yield from self._check(table, checks[1], updated, "update", access)
        if access.written is not None:
            # Told apart only where a check needed it: otherwise every row an upsert returned is a create.
            access.written.append((table, "create", inserted))
            access.written.append((table, "update", [(None, row) for row in updated]))
        return rows, aligned

    def _existing(self, table: Table, condition: Condition) -> Condition:
        """`condition` on the existing row of an ON CONFLICT, as a key lookup.

        SQLAlchemy correlates no subquery to an INSERT's table, so a
        relationship's EXISTS would read the whole table: the condition is
        evaluated in a SELECT of the table and the row found by its key.
        """
        core = self.tables[table.name]
        key = [core.c[name] for name in table.primary_key]
        matching = sa.select(*key).where(condition)
        return (key[0] if len(key) == 1 else sa.tuple_(*key)).in_(matching)

    def _update(
        self, table: Table, where: Condition | Mapping[str, Any], args: Mapping[str, Any], access: SessionAccess
    ) -> Steps:
        """UPDATE the rows `where` selects, or the one whose primary key `where` maps to its values."""
        named = [name for name in UPDATE_OPERATORS if args.get(name) is not None]
        if not named:
            kinds = {c.kind for c in table.columns}
            offered = [
                name
                for name in UPDATE_OPERATORS
                if name == "_set" or (INCREMENTS.keys() & kinds if name == "_inc" else Kind.JSON in kinds)
            ]
            raise ValidationFailed(
                f"at least one of the update operators ({', '.join(offered)}) is expected for {table.name!r}"
            )
        seen: dict[str, int] = {}
        for operator in named:
            for name in args[operator]:
                seen[name] = seen.get(name, 0) + 1
        twice = [name for name, count in seen.items() if count > 1]
        if twice:
            raise ValidationFailed(f"Column found in multiple operators: {json.dumps(twice)}.")
        given, increments = args.get("_set") or {}, args.get("_inc") or {}
        presets = access.update_presets(table)
        changes: dict[str, Any] = self._values(table, {**given, **presets})
        core = self.tables[table.name]
        # A preset column takes its value from the rule, as with `_set`.
        increments = {name: value for name, value in increments.items() if name not in presets}
        added = self._values(table, increments)
        for operator in named:
            if operator in JSON_EDITS:
                for name, value in args[operator].items():
                    if name not in presets:
                        changes[name] = self._json_edit(table, name, operator, value)
        allowed = access.rules.update_filter(table)
        if not changes and not added:
            return []
        old: list[Row] | None = None
        if access.written is not None:
            # Without capture (`serve --no-capture`) the events' old images are read here, locked.
            before = self.reader.pk_condition(table, where) if isinstance(where, Mapping) else where
            if allowed is not None:
                before = sa.and_(before, allowed)
            select = sa.select(*core.c).where(before)
            if self.model.dialect == "postgresql":
                select = select.with_for_update()
            old = yield self.statements.bind(select, access.parameters)
        if isinstance(where, Mapping) and not any(operator in JSON_EDITS for operator in named):
            # By primary key with values only (the common update): one statement
            # compiled per shape, bound with this request's values.
            statement = self._prepared_update(table, tuple(changes), tuple(added), access.role, allowed)
            values = {f"set_{n}": value for n, (name, value) in enumerate(changes.items())}
            values.update((f"inc_{n}", added[name]) for n, name in enumerate(added))
            values.update(
                (f"pk_{n}", to_db(table.column(name), where[name], self.model.dialect))
                for n, name in enumerate(table.primary_key)
            )
            session = access.parameters
            values.update((name, session[name]) for name in statement.names if name in session)
            rows: list[Row] = yield statement.bind(values)
        else:
            if isinstance(where, Mapping):
                where = self.reader.pk_condition(table, where)
            if allowed is not None:
                where = sa.and_(where, allowed)
            for name, value in added.items():
                # Untyped, or SQLAlchemy would read a numeric's text as a string and concatenate.
                changes[name] = core.c[name] + _bound(value)  # NULL stays NULL, as SQL (and Hasura) add
            statement_ = sa.update(core).where(where).values(changes).returning(*core.c)
            rows = yield self.statements.bind(statement_, access.parameters)
        self._check_range(table, increments, rows)
        self._check_json_edits(table, [name for op in named if op in JSON_EDITS for name in args[op]], rows)
        yield from self._check(table, access.rules.update_check(table), rows, "update", access)
        if access.written is not None and old is not None:
            olds = {self._key(table, row): row for row in old}
            access.written.append((table, "update", [(olds.get(self._key(table, row)), row) for row in rows]))
        return rows

    def _prepared_update(
        self,
        table: Table,
        names: tuple[str, ...],
        increments: tuple[str, ...],
        role: str | None,
        allowed: Condition | None,
    ) -> Compiled:
        """UPDATE ... SET `names` = values, `increments` += values, by primary key, under the role's filter."""
        key = (table.name, names, increments, role)
        compiled = self._updates.get(key)
        if compiled is None:
            core = self.tables[table.name]
            changes: dict[str, Any] = {
                name: sa.bindparam(f"set_{n}", type_=core.c[name].type) for n, name in enumerate(names)
            }
            for n, name in enumerate(increments):
                # Untyped, as `_bound`: the database takes the column's type.
                changes[name] = core.c[name] + sa.bindparam(f"inc_{n}", type_=sa.types.NullType())
            where = sa.and_(
                *(core.c[name] == sa.bindparam(f"pk_{n}", type_=core.c[name].type)
                  for n, name in enumerate(table.primary_key))
            )
            if allowed is not None:
                where = sa.and_(where, allowed)
            statement = sa.update(core).where(where).values(changes).returning(*core.c)
            compiled = self.statements.prepare(statement)
            if len(self._updates) >= PREPARED_UPDATES:
                self._updates.clear()  # shapes a client varies without end: start again
            self._updates[key] = compiled
        return compiled

    def _json_edit(self, table: Table, name: str, operator: str, value: Any) -> Any:
        """The new value of JSON column `name` under a JSON update operator (graph.sql.json_edits)."""
        column = table.column(name)
        quoted = self.statements.dialect.identifier_preparer.quote(column.sql_name)
        if value is None:
            # PostgreSQL's jsonb operators are strict: a null operand makes the column NULL.
            return sa.null()
        if self.model.dialect == "postgresql":
            return json_edits.postgresql(quoted, column.db_type, operator, value)
        return json_edits.sqlite(quoted, operator, value)

    def _check_json_edits(self, table: Table, names: Sequence[str], rows: Sequence[Row]) -> None:
        """Refuse what PostgreSQL's jsonb operators refuse (deleting from a scalar), on SQLite too."""
        for name in names:
            index = table.column_names.index(name)
            for row in rows:
                reason = json_edits.refusal(row[index])
                if reason is not None:
                    raise ValidationFailed(f"the database refused a value of the request: {reason}")

    def _check_range(self, table: Table, increments: Mapping[str, Any], rows: Sequence[Row]) -> None:
        """Refuse a sum its column cannot hold, as PostgreSQL's `integer`/`bigint` refuse it.

        SQLite keeps 64 bits in any integer column and turns a 64-bit overflow
        into a REAL; PostgreSQL raised already, so this finds nothing there.
        """
        for name in increments:
            column = table.column(name)
            bounds = INT_RANGES.get(column.kind)
            if bounds is None:
                continue
            index = table.column_names.index(name)
            for row in rows:
                value = row[index]
                if value is not None and not (isinstance(value, int) and bounds[0] <= value <= bounds[1]):
                    raise ValidationFailed(
                        f"the database refused a value of the request: {column.kind.value} out of range"
                        f" (column {name!r} would hold {value!r})"
                    )

    def _delete(self, table: Table, where: Condition, access: SessionAccess) -> Steps:
        allowed = access.rules.delete_filter(table)
        if allowed is not None:
            where = sa.and_(where, allowed)
        # Deleted rows cannot be filtered afterwards: find the visible ones first.
        select_filter = access.rules.select_filter(table.name)
        visible: set[Key] | None = None
        if select_filter is not None:
            visible = yield from self._keys(table, sa.and_(where, select_filter), None, access)
        core = self.tables[table.name]
        delete = sa.delete(core).where(where).returning(*core.c)
        rows: list[Row] = yield self.statements.bind(delete, access.parameters)
        if access.written is not None:
            access.written.append((table, "delete", rows))
        if visible is None:
            return rows, rows
        return rows, [row for row in rows if self._key(table, row) in visible]

    # -- rules over the written rows ---------------------------------------------

    def _key(self, table: Table, row: Row) -> Key:
        """The row's primary key (rows come in table column order, as RETURNING lists them)."""
        positions = self._key_positions.get(table.name)
        if positions is None:
            names = table.column_names
            positions = self._key_positions[table.name] = tuple(names.index(c) for c in table.primary_key)
        return tuple(row[i] for i in positions)

    def _keys(
        self, table: Table, condition: Condition, rows: Sequence[Row] | None, access: SessionAccess
    ) -> Steps:
        """Primary keys of the rows (of `rows`, when given) for which `condition` holds."""
        core = self.tables[table.name]
        columns = [core.c[n] for n in table.primary_key]
        statement = sa.select(*columns).where(sa.func.coalesce(condition, sa.false()))
        if rows is not None:
            keys = list(dict.fromkeys(self._key(table, row) for row in rows))
            if not keys:
                return set()
            # One bound value each (no IN list expanded at execution): a shape per count.
            if len(columns) == 1:
                statement = statement.where(columns[0].in_([_bound(k[0]) for k in keys]))
            else:
                statement = statement.where(
                    sa.tuple_(*columns).in_([sa.tuple_(*map(_bound, k)) for k in keys])
                )
        found: Rows = yield self.statements.bind(statement, access.parameters)
        return {tuple(row) for row in found}

    def _check(
        self, table: Table, check: Condition | None, rows: Sequence[Row], what: str, access: SessionAccess
    ) -> Steps:
        if check is None or not rows:
            return None
        passing = yield from self._keys(table, check, rows, access)
        if len(passing) < len({self._key(table, row) for row in rows}):
            raise PermissionDenied(f"check constraint of an {what} permission has failed")
        return None

    def _visible(self, table: Table, rows: list[Row], access: SessionAccess) -> Steps:
        """The changed rows the session may select (`returning` shows no others)."""
        allowed = access.rules.select_filter(table.name)
        if allowed is None or not rows:
            return rows
        keys = yield from self._keys(table, allowed, rows, access)
        return [row for row in rows if self._key(table, row) in keys]


def _linked(
    columns: Sequence[str], table: Table, sources: Sequence[str], row: Row
) -> dict[str, Any]:
    """`columns` set from `row` of `table` (its `sources`, pairwise): a relationship's key, as stored."""
    names = table.column_names
    return {column: row[names.index(source)] for column, source in zip(columns, sources, strict=True)}


def _dialect_insert(dialect: str) -> Any:
    # ON CONFLICT is each dialect's own construct in SQLAlchemy (same SQL on both here).
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _bound(value: Any) -> Any:
    # Untyped: the database infers the column's type from the key it is compared with.
    return sa.literal(value, type_=sa.types.NullType())
