"""Alembic's environment for the store: migrations run on the connection that
:mod:`embeddings.store.migrate` passes in ``config.attributes["connection"]``, in its transaction."""

from alembic import context

from embeddings.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=context.config.get_main_option("version_table"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
