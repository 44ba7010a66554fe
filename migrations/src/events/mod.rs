//! Migrations of the kernel's event outbox (`events_outbox`), applied in every process that
//! hosts a module publishing events.

crate::schema::migrator!(
    /// The outbox's migrator.
    "seaql_migrations_events",
    [
        m20261124_000001_create_outbox,
        m20261201_000001_outbox_traceparent
    ]
);
