"""The fields a selection asks for, with fragments spread and @skip/@include applied.

Every reader of a document (the query and mutation plans, the subscription
reader in graph.delivery) collects fields here, so aliases, fragments and
directives are read one way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLIncludeDirective,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.execution.values import get_directive_values


def collect_fields(
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Any,
    selection_sets: Iterable[SelectionSetNode],
) -> dict[str, list[FieldNode]]:
    """Fields by response key, with fragments spread and @skip/@include applied."""
    out: dict[str, list[FieldNode]] = {}
    seen: set[str] = set()

    def walk(selection_set: SelectionSetNode) -> None:
        for node in selection_set.selections:
            if not _included(variables, node):
                continue
            if isinstance(node, FieldNode):
                key = node.alias.value if node.alias else node.name.value
                out.setdefault(key, []).append(node)
            elif isinstance(node, InlineFragmentNode):
                walk(node.selection_set)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in seen:
                    seen.add(name)
                    walk(fragment.selection_set)

    for selection_set in selection_sets:
        walk(selection_set)
    return out


def _included(variables: Any, node: Any) -> bool:
    skip = get_directive_values(GraphQLSkipDirective, node, variables)
    if skip and skip.get("if"):
        return False
    include = get_directive_values(GraphQLIncludeDirective, node, variables)
    return not (include is not None and not include.get("if"))
