"""One schema, and one executor, per role: built at start-up, never per request.

Without a permissions file every role shares the full schema. With one, each
role named in it (and `anonymous`) gets the schema its grants allow, the admin
secret's session the full one, and any other role a schema with no tables in
it. A role named `admin` is one of those roles: only the admin secret reaches
the full schema, so the two never share an executor or its caches.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from graph.byte_cache import ByteBoundedCache
from graph.execution import DocumentCache, Executor
from graph.extend import check_grants, check_tables, merge
from graph.grants import TableGrants, grants_for
from graph.schema import build_schema

if TYPE_CHECKING:
    from graphql import GraphQLSchema

    from graph.config import Limits
    from graph.extend import Extension
    from graph.model import DatabaseModel
    from graph.rules.permissions import Permissions
    from graph.schema import ChangeCursor


class RoleSchemas:
    def __init__(
        self,
        model: DatabaseModel,
        change_cursor: ChangeCursor,
        permissions: Permissions,
        limits: Limits,
        extension: Extension | None = None,
    ) -> None:
        check_grants(extension, permissions)
        check_tables(extension, model.tables)
        # One cache for every role's documents: the bound is the server's, not each role's.
        self.documents: DocumentCache = ByteBoundedCache(limits.document_cache_bytes)
        full = merge(build_schema(model, change_cursor), extension, lambda _name: True)
        self.full = Executor(full, limits, self.documents)
        self._by_role: dict[str, Executor] = {}
        self._nobody = self.full
        if permissions.is_open:
            return
        for role in sorted(permissions.roles()):
            grants = grants_for(role, model, permissions)
            schema = merge(
                build_schema(model, change_cursor, grants),
                extension,
                functools.partial(permissions.custom_granted, role),
            )
            self._by_role[role] = Executor(schema, limits, self.documents)
        nothing = {name: TableGrants() for name in model.tables}
        schema = merge(build_schema(model, change_cursor, nothing), extension, lambda _name: False)
        self._nobody = Executor(schema, limits, self.documents)

    def executor_of_schema(self, schema: GraphQLSchema) -> Executor:
        """The executor whose schema `schema` is (a custom resolver's `info.schema`)."""
        for executor in (self.full, self._nobody, *self._by_role.values()):
            if executor.schema is schema:
                return executor
        raise KeyError("not a schema of this server")

    def executor(self, role: str | None) -> Executor:
        """The executor of `role`; None (the admin secret, graph.auth.Session.rules_role): the full one."""
        if role is None:
            return self.full
        return self._by_role.get(role, self._nobody)
