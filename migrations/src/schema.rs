//! What every module's migrations do: create a table with its columns, add an index, drop
//! the tables again (`down`), each written once here.

use sea_orm_migration::prelude::*;

/// A column or table name.
pub(crate) fn name(n: &str) -> Alias {
    Alias::new(n)
}

/// `CREATE TABLE IF NOT EXISTS table (columns)`.
pub(crate) async fn create_table(
    manager: &SchemaManager<'_>,
    table: &str,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    let mut create = Table::create();
    create.table(name(table)).if_not_exists();
    for mut column in columns {
        create.col(&mut column);
    }
    manager.create_table(create.to_owned()).await
}

/// `CREATE [UNIQUE] INDEX IF NOT EXISTS index ON table (columns)`.
pub(crate) async fn create_index(
    manager: &SchemaManager<'_>,
    index: &str,
    table: &str,
    columns: &[&str],
    unique: bool,
) -> Result<(), DbErr> {
    let mut create = Index::create();
    create.name(index).table(name(table)).if_not_exists();
    if unique {
        create.unique();
    }
    for column in columns {
        create.col(name(column));
    }
    manager.create_index(create.to_owned()).await
}

/// `DROP TABLE` of each of `tables`, in order: what `down` does.
pub(crate) async fn drop_tables(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
    for table in tables {
        manager
            .drop_table(Table::drop().table(name(table)).to_owned())
            .await?;
    }
    Ok(())
}

/// Deletes the rows of `table` whose `key` is one of `ids`: what a seed's `down` does.
pub(crate) async fn delete_rows<'a>(
    manager: &SchemaManager<'_>,
    table: &str,
    key: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<(), DbErr> {
    manager
        .exec_stmt(
            Query::delete()
                .from_table(name(table))
                .and_where(Expr::col(name(key)).is_in(ids))
                .to_owned(),
        )
        .await
}

/// One module's migrator: its migrations in order (each a file with `up` and `down`
/// functions, named by the file: the name a database records it under), tracked in the
/// module's own table.
macro_rules! migrator {
    ($(#[$doc:meta])* $table:literal, [$($migration:ident),+ $(,)?]) => {
        $(mod $migration;)+

        $(#[$doc])*
        pub struct Migrator;

        #[async_trait::async_trait]
        impl sea_orm_migration::MigratorTrait for Migrator {
            fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
                vec![$(Box::new(step::$migration)),+]
            }

            fn migration_table_name() -> sea_orm_migration::prelude::DynIden {
                use sea_orm_migration::prelude::IntoIden;
                sea_orm_migration::prelude::Alias::new($table).into_iden()
            }
        }

        /// One value per migration, running its file's `up` and `down`.
        #[allow(non_camel_case_types)]
        mod step {
            $(
                pub(super) struct $migration;

                impl sea_orm_migration::MigrationName for $migration {
                    fn name(&self) -> &str {
                        stringify!($migration)
                    }
                }

                #[async_trait::async_trait]
                impl sea_orm_migration::MigrationTrait for $migration {
                    async fn up(
                        &self,
                        manager: &sea_orm_migration::SchemaManager,
                    ) -> Result<(), sea_orm_migration::DbErr> {
                        super::$migration::up(manager).await
                    }

                    async fn down(
                        &self,
                        manager: &sea_orm_migration::SchemaManager,
                    ) -> Result<(), sea_orm_migration::DbErr> {
                        super::$migration::down(manager).await
                    }
                }
            )+
        }
    };
}
pub(crate) use migrator;
