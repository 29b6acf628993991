"""The gateway's own tables (one SQLite file, a *sync* engine: Authlib calls back
synchronously and the ``tally`` CLI writes from another process).

- ``oauth_clients``: the client registry.
- ``oauth_issued_tokens``: the jti, client and expiry of every live access token, so
  disabling a client can revoke exactly the tokens it holds.
- ``oauth_revocations``: revoked jtis until they expire, numbered so verifiers can
  poll "what is new after N".
- ``oauth_assertion_jtis``: ``private_key_jwt`` assertion ids already used (replay).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

metadata = sa.MetaData()

clients_table = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(255), nullable=False),  # "" for private_key_jwt
    sa.Column("scopes", sa.Text, nullable=False),  # space separated, as in OAuth
    sa.Column("allowed_apis", sa.Text, nullable=False),  # space separated API names
    sa.Column("customer_id", sa.String(100), nullable=True),
    sa.Column("tier", sa.String(20), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("auth_method", sa.String(40), nullable=True),  # NULL: client_secret_*
    sa.Column("jwks", sa.Text, nullable=True),  # public keys for private_key_jwt
)

issued_tokens_table = sa.Table(
    "oauth_issued_tokens",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False, index=True),
    sa.Column("exp", sa.Integer, nullable=False, index=True),
)

revocations_table = sa.Table(
    "oauth_revocations",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("jti", sa.String(64), nullable=False, unique=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("exp", sa.Integer, nullable=False, index=True),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("revoked_at", sa.Integer, nullable=False),
    sqlite_autoincrement=True,  # a seq is never reused after pruning
)

assertion_jtis_table = sa.Table(
    "oauth_assertion_jtis",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("exp", sa.Integer, nullable=False, index=True),
)

store_meta_table = sa.Table(
    "oauth_store_meta",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

# Columns added after the first release: ALTER TABLE ... ADD COLUMN on older files.
_ADDED_COLUMNS = {"oauth_clients": ("auth_method", "jwks")}


def create_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # the CLI writes while the gateway reads
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def create_schema(engine: Engine) -> None:
    try:
        metadata.create_all(engine)
    except OperationalError:  # another process created it between check and create
        metadata.create_all(engine)
    for table, columns in _ADDED_COLUMNS.items():
        with engine.connect() as conn:
            present = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")}
        for column in columns:
            if column not in present:
                _add_column(engine, table, column)


def _add_column(engine: Engine, table: str, column: str) -> None:
    kind = metadata.tables[table].c[column].type.compile(engine.dialect)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    except OperationalError as exc:  # another process added it first
        if "duplicate column" not in str(exc):
            raise
