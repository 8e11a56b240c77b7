"""The test database: every shape SPEC section 4 must serve, on SQLite and PostgreSQL alike.

users <- posts (two foreign keys: user_id and editor_id) <- comments; tags has a
composite primary key; audit_log has no primary key (read-only).
"""

from __future__ import annotations

import decimal

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text, unique=True),
    sa.Column("score", sa.Float),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("born", sa.Date),
    sa.Column("created_at", sa.DateTime),
    sa.Column("profile", sa.JSON(none_as_null=True)),
)
posts = sa.Table(
    "posts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text),
    sa.Column("published", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("editor_id", sa.ForeignKey("users.id"), nullable=True),
    sa.Column("rating", sa.Numeric(10, 2)),
    sa.Column("published_at", sa.DateTime(timezone=True)),
)
comments = sa.Table(
    "comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("post_id", sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
tags = sa.Table(
    "tags",
    metadata,
    sa.Column("post_id", sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("weight", sa.Integer),
)
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("level", sa.Integer),
)

ROWS: list[tuple[sa.Table, list[dict[str, object]]]] = [
    (
        users,
        [
            {"id": 1, "name": "Alice", "email": "alice@example.com", "score": 9.5, "active": True,
             "profile": {"langs": ["en", "fr"]}},
            {"id": 2, "name": "Bob", "email": None, "score": None, "active": False, "profile": None},
            {"id": 3, "name": "Carol", "email": "carol@example.com", "score": 7.0, "active": True,
             "profile": {"langs": []}},
        ],
    ),
    (
        posts,
        [
            {"id": 1, "title": "Hello World", "body": "first", "published": True, "user_id": 1,
             "editor_id": None, "rating": decimal.Decimal("4.50")},
            {"id": 2, "title": "second post", "body": None, "published": False, "user_id": 1,
             "editor_id": 2, "rating": None},
            {"id": 3, "title": "Third", "body": "50% off_sale", "published": True, "user_id": 2,
             "editor_id": 1, "rating": None},
            {"id": 4, "title": "hello again", "body": "x", "published": True, "user_id": 3,
             "editor_id": None, "rating": decimal.Decimal("3.25")},
        ],
    ),
    (
        comments,
        [
            {"id": 1, "post_id": 1, "body": "nice"},
            {"id": 2, "post_id": 1, "body": "great"},
            {"id": 3, "post_id": 3, "body": "ok"},
            {"id": 4, "post_id": 4, "body": "meh"},
        ],
    ),
    (
        tags,
        [
            {"post_id": 1, "name": "intro", "weight": 1},
            {"post_id": 1, "name": "news", "weight": 2},
            {"post_id": 3, "name": "misc", "weight": None},
        ],
    ),
    (audit_log, [{"message": "created", "level": 1}, {"message": "updated", "level": None}]),
]


async def create(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            for table, rows in ROWS:
                await conn.execute(table.insert(), rows)
            if conn.dialect.name == "postgresql":
                # Explicit ids above leave the serials behind; move them on.
                for table in (users, posts, comments):
                    await conn.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"(SELECT max(id) FROM {table.name}))"
                        )
                    )
    finally:
        await engine.dispose()
