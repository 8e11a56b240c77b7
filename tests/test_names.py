"""Names users choose (`--metadata`), the `graphql-default` inflection, and names GraphQL cannot carry.

On both databases, over tests/chinook.py: renamed tables, columns, root
fields and relationships in queries, mutations, permission rules and events;
the SDL of `graphql-default` on Chinook against tests/golden/chinook_graphql_default.graphql.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig

from graph.extend import table
from graph.inflection import graphql_safe
from graph.metadata import MetadataError, parse_metadata
from graph.model import Column, DatabaseModel, ForeignKey, Kind, Table
from graph.naming import name_model
from tests import chinook
from tests.conftest import GraphQL, GraphQLWS

GOLDEN = Path(__file__).parent / "golden" / "chinook_graphql_default.graphql"
ROOT = Path(__file__).parent.parent

METADATA = """
tables:
  chinook_artist:
    custom_name: artist
    custom_root_fields: {select: artists, select_by_pk: artist_by_id, insert_one: add_artist}
    column_config: {ArtistId: {custom_name: id}, Name: {custom_name: name}}
    relationships: {album: albums}
  chinook_album:
    custom_name: album
    custom_column_names: {AlbumId: id, Title: title, ArtistId: artist_id}
  chinook_invoice: {exclude: true}
"""


@pytest.fixture
def chinook_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'chinook.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres")
    asyncio.run(chinook.create(url))
    return url


def _file(tmp_path: Path, text: str, name: str = "metadata.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- pure: the model's names ---------------------------------------------------------


def _model() -> DatabaseModel:
    def col(name: str, pk: bool = False) -> Column:
        return Column(name, Kind.INTEGER if name.endswith("Id") else Kind.STRING, nullable=not pk)

    return DatabaseModel("sqlite", {
        "chinook_artist": Table("chinook_artist", (col("ArtistId", True), col("Name")), ("ArtistId",)),
        "chinook_album": Table(
            "chinook_album", (col("AlbumId", True), col("Title"), col("ArtistId")), ("AlbumId",),
            foreign_keys=(ForeignKey(("ArtistId",), "chinook_artist", ("ArtistId",)),),
        ),
    })


def test_custom_names_keep_the_database_names_beside_them() -> None:
    model = name_model(_model(), parse_metadata(METADATA.replace("  chinook_invoice: {exclude: true}\n", "")))
    artist = model.tables["artist"]
    assert artist.sql_name == "chinook_artist"
    assert [(c.name, c.sql_name) for c in artist.columns] == [("id", "ArtistId"), ("name", "Name")]
    assert artist.primary_key == ("id",)
    assert {r.name for r in artist.relationships} == {"albums"}
    album = model.tables["album"]
    assert [(r.name, r.remote_table, r.local_columns) for r in album.relationships] == [
        ("artist", "artist", ("artist_id",))
    ]
    assert model.by_sql_name["chinook_album"] is album


@pytest.mark.parametrize(("text", "message"), [
    ("tables: {nope: {custom_name: x}}", "tables.nope: no such table in the database"),
    ("tables: {chinook_artist: {column_config: {Nope: {custom_name: x}}}}",
     "tables.chinook_artist.column_config.Nope: no such column"),
    ("tables: {chinook_artist: {custom_name: chinook_album}}", "is the GraphQL name of table 'chinook_album' too"),
    ("tables: {chinook_artist: {custom_column_names: {Name: ArtistId}}}", "is the GraphQL name of column"),
    ("tables: {chinook_artist: {custom_name: 'not valid'}}", "tables.chinook_artist.custom_name: 'not valid' is not a name GraphQL can carry"),
    ("tables: {chinook_artist: {colour: red}}", "tables.chinook_artist: unknown key 'colour'"),
    ("inflection: camel", "inflection: expected one of hasura, graphql-default"),
    ("tables: {chinook_artist: {custom_root_fields: {select: chinook_album}}}", "the root field 'chinook_album' is named twice"),
    ("tables: {chinook_artist: {custom_root_fields: {selekt: x}}}", "unknown root field 'selekt'"),
    ("tables: {chinook_artist: {relationships: {nope: x}}}", "tables.chinook_artist.relationships.nope: no such relationship"),
    ("tables: {chinook_artist: {relationships: {chinook_album: Name}}}", "'Name' is the name of a column too"),
    ("tables: [1", "line 1"),
])
def test_metadata_that_does_not_fit_is_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(MetadataError) as raised:
        name_model(_model(), parse_metadata(text, "m.yaml"))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert str(raised.value).startswith("m.yaml")


def test_names_graphql_cannot_carry_are_served_under_a_safe_form() -> None:
    assert graphql_safe("order items") == "order_items"
    assert graphql_safe('unit "price"') == "unit_price"
    assert graphql_safe("größe") == "grosse"
    assert graphql_safe("2nd") == "_2nd"
    assert graphql_safe("€") is None


def test_bad_metadata_stops_the_cli_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    asyncio.run(chinook.create(url))
    path = _file(tmp_path, "tables: {chinook_artist: {column_config: {Nope: {custom_name: x}}}}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FORGEGRAPH_METADATA": path}
    done = subprocess.run(
        [sys.executable, "-m", "graph", "export-schema", "--database", url],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "tables.chinook_artist.column_config.Nope: no such column" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_readme_metadata_serves_chinook(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Names"):]
    example = section[section.index("```yaml\n") + len("```yaml\n"):]
    example = example[: example.index("```")]
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    asyncio.run(chinook.create(url))
    path = _file(tmp_path, example)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "graph", "export-schema", "--database", url, "--metadata", path],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )
    assert "artists(" in done.stdout and "artist(id: Int!): Artist" in done.stdout
    assert "manager: ChinookEmployee" in done.stdout and "reports(" in done.stdout
    assert "django" not in done.stdout.lower()


# -- the golden SDL of graphql-default on Chinook -------------------------------------


def test_graphql_default_on_chinook_is_the_golden_sdl(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    asyncio.run(chinook.create(url))
    path = _file(tmp_path, "inflection: graphql-default\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "graph", "export-schema", "--database", url, "--metadata", path],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )
    if os.environ.get("FORGEGRAPH_UPDATE_GOLDEN"):
        GOLDEN.write_text(done.stdout, encoding="utf-8")
    assert done.stdout == GOLDEN.read_text(encoding="utf-8")


# -- served: queries, mutations, permissions, events on both databases -------------


def test_renamed_tables_columns_root_fields_and_relationships(chinook_url: str, serve: Any, tmp_path: Path) -> None:
    gql = GraphQL(serve(database=chinook_url, metadata=_file(tmp_path, METADATA)))
    try:
        data = gql("{ artists(order_by: {id: asc}) { id name albums(order_by: {id: asc}) { title artist { name } } } }")
        assert data["artists"][1] == {
            "id": 2, "name": "Accept",
            "albums": [{"title": "Balls to the Wall", "artist": {"name": "Accept"}},
                       {"title": "Restless and Wild", "artist": {"name": "Accept"}}],
        }
        assert gql("{ artist_by_id(id: 1) { name } }") == {"artist_by_id": {"name": "AC/DC"}}
        assert gql('{ album(where: {artist: {name: {_eq: "AC/DC"}}}) { id } }') == {"album": [{"id": 1}]}
        added = gql('mutation { add_artist(object: {name: "Aerosmith"}) { id name } }')["add_artist"]
        assert added["name"] == "Aerosmith"
        moved = gql(
            "mutation($id: Int!) { update_album_by_pk(pk_columns: {id: 3}, _set: {artist_id: $id}) { artist { name } } }",
            {"id": added["id"]},
        )
        assert moved == {"update_album_by_pk": {"artist": {"name": "Aerosmith"}}}
        assert gql("{ album_aggregate { aggregate { count max { id } } } }") == {
            "album_aggregate": {"aggregate": {"count": 3, "max": {"id": 3}}}
        }
        assert gql("mutation { delete_album(where: {id: {_eq: 3}}) { affected_rows } }") == {
            "delete_album": {"affected_rows": 1}
        }
        # Excluded, and the database names are not fields.
        fields = gql('{ __schema { queryType { fields { name } } } }')["__schema"]["queryType"]["fields"]
        names = {f["name"] for f in fields}
        assert "chinook_invoice" not in names and "chinook_artist" not in names
        assert "chinook_track" in names
    finally:
        gql.http.close()


def test_odd_identifiers_are_served_with_quoting_right(chinook_url: str, serve: Any) -> None:
    asyncio.run(_run_sql(
        chinook_url,
        'CREATE TABLE "€" (id INTEGER PRIMARY KEY)',
        'CREATE TABLE "twins" (id INTEGER PRIMARY KEY, "a b" INTEGER, "a_b" INTEGER)',
    ))
    gql = GraphQL(serve(database=chinook_url))
    try:
        assert gql("{ order_items { Id unit_price grosse meta_data } }") == {
            "order_items": [{"Id": 1, "unit_price": 5, "grosse": "XL", "meta_data": None}]
        }
        inserted = gql('mutation($m: JSON) { insert_order_items_one(object: {unit_price: 7, grosse: "S", meta_data: $m}) '
                       "{ Id unit_price } }", {"m": {"a": 1}})
        assert inserted["insert_order_items_one"]["unit_price"] == 7
        updated = gql(
            'mutation($m: JSON) { update_order_items(where: {grosse: {_eq: "S"}}, _inc: {unit_price: 1}, '
            "_append: {meta_data: $m}) { returning { unit_price meta_data } } }", {"m": {"b": 2}}
        )
        assert updated == {"update_order_items": {"returning": [{"unit_price": 8, "meta_data": {"a": 1, "b": 2}}]}}
        by_pk = gql("mutation { update_order_items_by_pk(pk_columns: {Id: 1}, _set: {unit_price: 6}) { unit_price } }")
        assert by_pk == {"update_order_items_by_pk": {"unit_price": 6}}
        upserted = gql('mutation { insert_order_items_one(object: {Id: 1, unit_price: 9}, on_conflict: '
                       "{constraint: order_items_pkey, update_columns: [unit_price]}) { Id unit_price grosse } }")
        assert upserted == {"insert_order_items_one": {"Id": 1, "unit_price": 9, "grosse": "XL"}}
        assert gql("{ twins { id a_b } }") == {"twins": []}
        problems = gql.http.get("/schema/problems").json()
        assert sorted(problems, key=str) == sorted([
            {"table": "€", "reason": "its name has nothing GraphQL can carry"},
            {"table": "twins", "column": "a b", "reason": "its GraphQL name 'a_b' is taken by column 'a_b'"},
        ], key=str)
    finally:
        gql.http.close()


async def _run_sql(url: str, *statements: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


PERMISSIONS = """
tables:
  artist:
    select:
      anonymous: {filter: {name: {_eq: Accept}}, columns: [id, name]}
  album:
    select:
      anonymous: {filter: {artist: {name: {_eq: Accept}}}, columns: [id, title]}
    update:
      anonymous: {filter: {artist: {name: {_eq: Accept}}}, columns: [title]}
"""


def test_permission_rules_name_the_graphql_names(chinook_url: str, serve: Any, tmp_path: Path) -> None:
    server = serve(
        database=chinook_url, metadata=_file(tmp_path, METADATA),
        permissions=_file(tmp_path, PERMISSIONS, "permissions.yaml"),
    )
    gql = GraphQL(server)
    try:
        assert gql("{ artists { name albums(order_by: {id: asc}) { title } } album(order_by: {id: asc}) { id } }") == {
            "artists": [{"name": "Accept", "albums": [{"title": "Balls to the Wall"}, {"title": "Restless and Wild"}]}],
            "album": [{"id": 2}, {"id": 3}],
        }
        assert gql('mutation { update_album(where: {}, _set: {title: "T"}) { affected_rows } }') == {
            "update_album": {"affected_rows": 2}
        }
        assert "validation-failed" in gql.error_codes("{ album { artist_id } }")
    finally:
        gql.http.close()


def test_a_rule_naming_a_database_name_is_refused(tmp_path: Path) -> None:
    from graph.rules._text import PermissionsError
    from graph.rules.permissions import load_permissions

    model = name_model(_model(), parse_metadata(METADATA.replace("  chinook_invoice: {exclude: true}\n", "")))
    rules = PERMISSIONS.replace("columns: [id, name]", "columns: [ArtistId, name]")
    with pytest.raises(PermissionsError, match="ArtistId"):
        load_permissions(_file(tmp_path, rules, "permissions.yaml"), model)


async def test_events_use_the_graphql_names(chinook_url: str, serve: Any, tmp_path: Path) -> None:
    server = serve(database=chinook_url, metadata=_file(tmp_path, METADATA))
    gql = GraphQL(server)
    try:
        async with GraphQLWS.open(server) as ws:
            await ws.subscribe("1", 'subscription { tableChanged(table: "artist") { type table record old_record } }')
            await asyncio.sleep(0.3)
            await asyncio.to_thread(gql, 'mutation { add_artist(object: {name: "Queen"}) { id } }')
            event = (await ws.next("1", timeout=10))["data"]["tableChanged"]
            assert event["type"] == "create" and event["table"] == "artist"
            assert set(event["record"]) == {"id", "name"} and event["record"]["name"] == "Queen"
            await asyncio.to_thread(
                gql, 'mutation($id: Int!) { update_artist_by_pk(pk_columns: {id: $id}, _set: {name: "Queen II"}) { id } }',
                {"id": event["record"]["id"]},
            )
            changed = (await ws.next("1", timeout=10))["data"]["tableChanged"]
            assert changed["type"] == "update" and changed["table"] == "artist"
            assert changed["record"] == {"id": event["record"]["id"], "name": "Queen II"}
            assert changed["old_record"] == {"id": event["record"]["id"], "name": "Queen"}
            await ws.subscribe("2", 'subscription { tableChanged(table: "order_items") { table record } }')
            await asyncio.sleep(0.3)
            await asyncio.to_thread(gql, "mutation { insert_order_items_one(object: {unit_price: 3}) { Id } }")
            odd = (await ws.next("2", timeout=10))["data"]["tableChanged"]
            assert odd["table"] == "order_items"
            assert odd["record"]["unit_price"] == 3 and "grosse" in odd["record"]
    finally:
        gql.http.close()


def test_graphql_default_serves_camel_case_arguments_and_fields(chinook_url: str, serve: Any, tmp_path: Path) -> None:
    gql = GraphQL(serve(database=chinook_url, metadata=_file(tmp_path, "inflection: graphql-default\n")))
    try:
        data = gql("""{ chinookArtist(orderBy: {artistId: DESC}, where: {name: {_isNull: false}}, limit: 1) {
            name chinookAlbums(orderBy: {albumId: ASC}) { title artist { name } }
            chinookAlbumsAggregate { aggregate { count max { albumId } stddevPop { albumId } } } }
          chinookEmployeeByPk(employeeId: 3) { chinookEmployee { firstName chinookEmployee { firstName } } }
          chinookCustomer { supportRep { lastName } }
          chinookArtistAggregate(distinctOn: [name]) { aggregate { count } } }""")
        assert data["chinookArtist"] == [{
            "name": "Accept",
            "chinookAlbums": [{"title": "Balls to the Wall", "artist": {"name": "Accept"}},
                              {"title": "Restless and Wild", "artist": {"name": "Accept"}}],
            "chinookAlbumsAggregate": {"aggregate": {"count": 2, "max": {"albumId": 3}, "stddevPop": {"albumId": 0.5}}},
        }]
        assert data["chinookEmployeeByPk"] == {"chinookEmployee": {"firstName": "Nancy", "chinookEmployee": {"firstName": "Andrew"}}}
        assert data["chinookCustomer"] == [{"supportRep": {"lastName": "Peacock"}}]
        added = gql('mutation { insertChinookArtistOne(object: {name: "Queen"}, '
                    'onConflict: {constraint: chinook_artist_pkey, updateColumns: [name]}) { artistId } }')
        new_id = added["insertChinookArtistOne"]["artistId"]
        moved = gql("mutation($id: Int!) { updateChinookAlbumByPk(pkColumns: {albumId: 3}, _set: {artistId: $id}) "
                    "{ artist { name } } }", {"id": new_id})
        assert moved == {"updateChinookAlbumByPk": {"artist": {"name": "Queen"}}}
        gone = gql("mutation { deleteChinookTrack(where: {albumId: {_eq: 2}}) { affectedRows returning { name } } }")
        assert gone == {"deleteChinookTrack": {"affectedRows": 1, "returning": [{"name": "Balls to the Wall"}]}}
        assert "validation-failed" in gql.error_codes("{ chinookArtist(order_by: {name: asc}) { name } }")
    finally:
        gql.http.close()


async def test_graphql_default_streams_and_events(chinook_url: str, serve: Any, tmp_path: Path) -> None:
    server = serve(database=chinook_url, metadata=_file(tmp_path, "inflection: graphql-default\n"))
    gql = GraphQL(server)
    try:
        async with GraphQLWS.open(server) as ws:
            await ws.subscribe("s", "subscription { chinookArtistStream(batchSize: 10, "
                                    "cursor: {initialValue: {artistId: 0}, ordering: ASC}) { artistId name } }")
            first = (await ws.next("s", timeout=10))["data"]["chinookArtistStream"]
            assert [row["artistId"] for row in first] == [1, 2]
            await ws.subscribe("e", 'subscription { tableChanged(table: "chinookArtist") { table record } }')
            await asyncio.sleep(0.3)
            await asyncio.to_thread(gql, 'mutation { insertChinookArtistOne(object: {name: "Queen"}) { artistId } }')
            event = (await ws.next("e", timeout=10))["data"]["tableChanged"]
            assert event == {"table": "chinookArtist", "record": {"artistId": 3, "name": "Queen"}}
            streamed = (await ws.next("s", timeout=10))["data"]["chinookArtistStream"]
            assert streamed == [{"artistId": 3, "name": "Queen"}]
    finally:
        gql.http.close()


def test_names_chosen_under_graphql_default_are_served_as_written() -> None:
    from graph.schema import build_schema

    async def cursor() -> str:
        return "0"

    meta = parse_metadata(
        "inflection: graphql-default\n"
        "tables:\n"
        "  chinook_artist: {custom_name: music_artist, relationships: {chinookAlbums: the_albums},\n"
        "                   custom_root_fields: {select_by_pk: one_artist}}\n"
    )
    schema = build_schema(name_model(_model(), meta), cursor)
    artist = schema.type_map["MusicArtist"]
    assert {"artistId", "name", "the_albums", "the_albumsAggregate"} <= set(artist.fields)  # type: ignore[attr-defined]
    query = schema.query_type
    assert query is not None
    assert {"music_artist", "one_artist", "music_artistAggregate", "chinookAlbum"} <= set(query.fields)
    assert "insertMusic_artistOne" not in schema.mutation_type.fields  # type: ignore[union-attr]
    assert "insertMusicArtistOne" in schema.mutation_type.fields  # type: ignore[union-attr]


Artist = table("artist")


@strawberry.type
class FavouritesQuery:
    @strawberry.field
    def favourite_artists(self) -> list[Artist]:  # type: ignore[valid-type]
        return [2, 1]  # type: ignore[return-value] - keys: the API reads the rows


def test_custom_fields_return_renamed_tables(chinook_url: str, serve: Any, tmp_path: Path) -> None:
    extension = strawberry.Schema(query=FavouritesQuery, config=StrawberryConfig(auto_camel_case=False))
    metadata = "inflection: graphql-default\ntables:\n  chinook_artist: {custom_name: artist, column_config: {ArtistId: {custom_name: id}}}\n"
    gql = GraphQL(serve(database=chinook_url, metadata=_file(tmp_path, metadata), extend=extension))
    try:
        assert gql("{ favourite_artists { id name chinookAlbums { title } } }") == {"favourite_artists": [
            {"id": 2, "name": "Accept", "chinookAlbums": [{"title": "Balls to the Wall"}, {"title": "Restless and Wild"}]},
            {"id": 1, "name": "AC/DC", "chinookAlbums": [{"title": "For Those About To Rock We Salute You"}]},
        ]}
    finally:
        gql.http.close()
