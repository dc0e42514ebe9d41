"""Database triggers that make a table append-only on SQLite and PostgreSQL.

Used by migrations for the audit trail, its checkpoints and signatures: the database itself
refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL), not just the application.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION lims_forbid_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'append-only table %%: %% is forbidden', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def create_statements(dialect: str, table: str) -> list[str]:
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'append-only table {table}: UPDATE is forbidden'); END",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'append-only table {table}: DELETE is forbidden'); END",
        ]
    if dialect == "postgresql":
        return [
            PG_FUNCTION,
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION lims_forbid_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION lims_forbid_change()",
        ]
    raise ValueError(f"unsupported database {dialect}")


def drop_statements(dialect: str, table: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_no_update", f"DROP TRIGGER IF EXISTS {table}_no_delete"]
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
    ]


def protect(connection: Connection, *tables: str) -> None:
    for table in tables:
        for statement in create_statements(connection.dialect.name, table):
            connection.exec_driver_sql(statement)


def unprotect(connection: Connection, *tables: str) -> None:
    for table in tables:
        for statement in drop_statements(connection.dialect.name, table):
            connection.exec_driver_sql(statement)
