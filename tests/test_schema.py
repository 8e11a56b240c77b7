"""The generated schema: `schema.graphql` must match what `export-schema` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export_schema(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    for command in (["migrate", "--database", url], ["export-schema", "--database", url]):
        result = subprocess.run(
            [sys.executable, "-m", "graph", *command],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        )
        assert result.returncode == 0, result.stderr
    return result.stdout


def test_schema_graphql_matches_export_schema(tmp_path: Path) -> None:
    exported = export_schema(tmp_path)
    committed = (ROOT / "schema.graphql").read_text()
    assert exported == committed, (
        "schema.graphql drifted from `forgegraph export-schema`; regenerate it with "
        "`forgegraph migrate --database sqlite+aiosqlite:///./demo.db && "
        "forgegraph export-schema --database sqlite+aiosqlite:///./demo.db > schema.graphql`"
    )


def test_the_demo_schema_has_the_hasura_dialect(tmp_path: Path) -> None:
    sdl = export_schema(tmp_path)
    for line in (
        "type query_root {",
        "type mutation_root {",
        "posts(where: posts_bool_exp, order_by: [posts_order_by!], limit: Int, offset: Int, "
        "distinct_on: [posts_select_column!]): [posts!]!",
        "posts_by_pk(id: Int!): posts",
        "posts_aggregate(where: posts_bool_exp, order_by: [posts_order_by!], limit: Int, offset: Int, "
        "distinct_on: [posts_select_column!]): posts_aggregate!",
        "enum posts_select_column {",
        "insert_posts(objects: [posts_insert_input!]!, on_conflict: posts_on_conflict): posts_mutation_response",
        "insert_posts_one(object: posts_insert_input!, on_conflict: posts_on_conflict): posts",
        "update_columns: [posts_update_column!]! = []",
        "update_posts(where: posts_bool_exp!, _set: posts_set_input, _inc: posts_inc_input): posts_mutation_response",
        "update_posts_by_pk(pk_columns: posts_pk_columns_input!, _set: posts_set_input, _inc: posts_inc_input): posts",
        "delete_posts(where: posts_bool_exp!): posts_mutation_response",
        "delete_posts_by_pk(id: Int!): posts",
        "affected_rows: Int!",
        "returning: [posts!]!",
        "user: users",
        "enum order_by {",
        "asc_nulls_first",
        "_ilike: String",
        "_in: [Int!]",
    ):
        assert line in sdl, line
    assert "alembic_version" not in sdl
