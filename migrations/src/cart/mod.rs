//! Migrations of the cart module.

crate::schema::migrator!(
    /// The cart module's migrator.
    "seaql_migrations_cart",
    [m20261124_000001_create_cart_items]
);
