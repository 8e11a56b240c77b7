"""Chinook as Django lays it out: `chinook_*` tables, camel-case columns, a self-reference.

Also a table whose names GraphQL cannot carry as they are (`order items`,
`unit "price"`, `größe`). DDL per backend (a serial key on PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa


def ddl(dialect: str) -> list[str]:
    key = "SERIAL PRIMARY KEY" if dialect == "postgresql" else "INTEGER PRIMARY KEY"
    stamp = "TIMESTAMP" if dialect == "postgresql" else "DATETIME"
    json = "JSONB" if dialect == "postgresql" else "JSON"
    return [
        f'CREATE TABLE chinook_artist ("ArtistId" {key}, "Name" VARCHAR(120))',
        f'CREATE TABLE chinook_album ("AlbumId" {key}, "Title" VARCHAR(160) NOT NULL,'
        ' "ArtistId" INTEGER NOT NULL REFERENCES chinook_artist ("ArtistId"))',
        f'CREATE TABLE chinook_track ("TrackId" {key}, "Name" VARCHAR(200) NOT NULL,'
        ' "AlbumId" INTEGER REFERENCES chinook_album ("AlbumId"), "Milliseconds" INTEGER NOT NULL,'
        ' "UnitPrice" NUMERIC(10, 2) NOT NULL)',
        f'CREATE TABLE chinook_employee ("EmployeeId" {key}, "LastName" VARCHAR(20) NOT NULL,'
        ' "FirstName" VARCHAR(20) NOT NULL, "ReportsTo" INTEGER REFERENCES chinook_employee ("EmployeeId"))',
        f'CREATE TABLE chinook_customer ("CustomerId" {key}, "FirstName" VARCHAR(40) NOT NULL,'
        ' "LastName" VARCHAR(20) NOT NULL, "Email" VARCHAR(60) NOT NULL,'
        ' "SupportRepId" INTEGER REFERENCES chinook_employee ("EmployeeId"))',
        f'CREATE TABLE chinook_invoice ("InvoiceId" {key},'
        ' "CustomerId" INTEGER NOT NULL REFERENCES chinook_customer ("CustomerId"),'
        f' "InvoiceDate" {stamp} NOT NULL, "Total" NUMERIC(10, 2) NOT NULL)',
        f'CREATE TABLE "order items" ("Id" {key}, "unit ""price""" INTEGER NOT NULL, "größe" TEXT, "meta data" {json})',
        f'CREATE TABLE django_migrations (id {key}, app VARCHAR(255) NOT NULL, name VARCHAR(255) NOT NULL,'
        f' applied {stamp} NOT NULL)',
    ]


ROWS = [
    "INSERT INTO chinook_artist (\"ArtistId\", \"Name\") VALUES (1, 'AC/DC'), (2, 'Accept')",
    "INSERT INTO chinook_album (\"AlbumId\", \"Title\", \"ArtistId\") VALUES"
    " (1, 'For Those About To Rock We Salute You', 1), (2, 'Balls to the Wall', 2), (3, 'Restless and Wild', 2)",
    "INSERT INTO chinook_track (\"TrackId\", \"Name\", \"AlbumId\", \"Milliseconds\", \"UnitPrice\") VALUES"
    " (1, 'For Those About To Rock (We Salute You)', 1, 343719, 0.99), (2, 'Balls to the Wall', 2, 342562, 0.99)",
    "INSERT INTO chinook_employee (\"EmployeeId\", \"LastName\", \"FirstName\", \"ReportsTo\") VALUES"
    " (1, 'Adams', 'Andrew', NULL), (2, 'Edwards', 'Nancy', 1), (3, 'Peacock', 'Jane', 2)",
    "INSERT INTO chinook_customer (\"CustomerId\", \"FirstName\", \"LastName\", \"Email\", \"SupportRepId\")"
    " VALUES (1, 'Luís', 'Gonçalves', 'luisg@embraer.com.br', 3)",
    "INSERT INTO chinook_invoice (\"InvoiceId\", \"CustomerId\", \"InvoiceDate\", \"Total\") VALUES"
    " (1, 1, '2009-01-01 00:00:00', 1.98)",
    "INSERT INTO \"order items\" (\"Id\", \"unit \"\"price\"\"\", \"größe\") VALUES (1, 5, 'XL')",
]


async def create(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in [*ddl(conn.dialect.name), *ROWS]:
                await conn.execute(sa.text(statement))
            if conn.dialect.name == "postgresql":
                for table, key in (
                    ("chinook_artist", "ArtistId"), ("chinook_album", "AlbumId"), ("chinook_track", "TrackId"),
                    ("chinook_employee", "EmployeeId"), ("chinook_customer", "CustomerId"),
                    ("chinook_invoice", "InvoiceId"), ("order items", "Id"),
                ):
                    await conn.execute(sa.text(
                        f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{key}'), "
                        f"(SELECT max(\"{key}\") FROM \"{table}\"))"
                    ))
    finally:
        await engine.dispose()
