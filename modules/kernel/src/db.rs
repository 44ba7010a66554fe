//! Database connections. SQLite (a file, created on first use) by default; PostgreSQL when the
//! url says `postgres://`. Modules get a `DatabaseConnection` and own their tables (`<m>_*`).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, RuntimeErr};

use crate::error::ApiError;
use crate::health::ReadinessCheck;

/// The file a `sqlite:` url points at, if it is a file (not `:memory:`).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Sets [`crate::metrics::DB_POOL_CONNECTIONS`] and [`crate::metrics::DB_POOL_MAX`] from the
/// pool of a connection.
pub struct PoolGauges(pub DatabaseConnection);

#[async_trait]
impl crate::metrics::Gauges for PoolGauges {
    async fn record(&self) {
        use sea_orm::DbBackend;
        let (size, idle, max) = match self.0.get_database_backend() {
            DbBackend::Sqlite => {
                let pool = self.0.get_sqlite_connection_pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            DbBackend::Postgres => {
                let pool = self.0.get_postgres_connection_pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            _ => return,
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        metrics::gauge!(crate::metrics::DB_POOL_CONNECTIONS, "state" => "idle")
            .set(f64::from(idle));
        metrics::gauge!(crate::metrics::DB_POOL_CONNECTIONS, "state" => "in_use")
            .set(f64::from(size - idle));
        metrics::gauge!(crate::metrics::DB_POOL_MAX).set(f64::from(max));
    }
}

/// How long a PostgreSQL connection sits idle in the pool before it is pinged on acquire
/// (HikariCP skips the check within half a second of a connection's last use).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Connects, creating the SQLite file and its directory when needed.
///
/// SQLite runs in WAL mode (readers do not block the writer) with full fsync, so a committed
/// write survives a crash.
///
/// # Errors
/// [`DbErr`] when the database cannot be reached or the directory cannot be created.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let is_sqlite = url.starts_with("sqlite:");
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            DbErr::Custom(format!(
                "cannot create database directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(if is_sqlite { 1 } else { 0 })
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .map_sqlx_sqlite_pool_opts(|pool| pool.after_release(close_if_in_transaction));
    if is_sqlite {
        // A SQLite connection is a file opened in this process: nothing between can drop it,
        // and a ping is a round trip to its worker thread on every acquire.
        opts.test_before_acquire(false);
    } else {
        // A server connection is checked when it sat idle a while; one used within the last
        // second goes out untested. After a server restart or failover each such hot
        // connection fails one statement (as unavailable: 503) and is closed, not given back
        // (sqlx pings it on release); a quiet pool reconnects unseen.
        opts.test_before_acquire_if_idle_for(PING_AFTER_IDLE);
    }
    let db = Database::connect(opts).await?;
    if is_sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    Ok(db)
}

/// A SQLite connection given back with a transaction still open is closed, not reused.
///
/// That happens when a transaction failed and was dropped (its rollback is still queued), and
/// after a storage failure: SQLite rolls a transaction back by itself on a full disk or an I/O
/// error, the driver's ROLLBACK then fails ("no transaction is active") and its count of open
/// transactions stays one too high, so that the connection's next transaction is a savepoint
/// whose "rollback" leaves SQLite's transaction open. Such a connection acknowledges writes
/// that are never committed and holds the write lock until the process ends (every other
/// writer then gets "database is locked"). Closing it rolls back whatever it holds; the pool
/// opens a fresh one.
fn close_if_in_transaction(
    conn: &mut sea_orm::sqlx::SqliteConnection,
    _: sea_orm::sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sea_orm::sqlx::Error>> {
    use sea_orm::sqlx::Connection;
    let reuse = !conn.is_in_transaction();
    if !reuse {
        tracing::debug!("closing a database connection given back inside a transaction");
    }
    Box::pin(std::future::ready(Ok(reuse)))
}

/// Whether a database error means "the database is not reachable" (a dependency problem:
/// 503) rather than "our query is wrong" (a bug: 500).
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
                Sqlx::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Database error codes that mean "try later", not "your query is wrong": SQLite busy and
/// locked (5, 6), I/O errors (10) and a full disk (13), with their extended codes; PostgreSQL
/// connection exceptions (class 08), insufficient resources (class 53: a full disk, no memory,
/// too many connections), shutdown (57P01-57P03) and I/O errors (58030).
fn unavailable_code(code: &str) -> bool {
    let sqlite = code
        .parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13));
    sqlite
        || code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "58030")
}

/// A database error as a contract error: unreachable storage is `E::unavailable` (503),
/// anything else `E::internal` (500, a bug of ours).
pub fn storage_error<E: ApiError>(err: &DbErr) -> E {
    if is_unavailable(err) {
        E::unavailable(err.to_string())
    } else {
        E::internal(err.to_string())
    }
}

/// Readiness of the process's database: a trivial query answers.
pub struct DatabaseReadiness(pub DatabaseConnection);

#[async_trait]
impl ReadinessCheck for DatabaseReadiness {
    fn name(&self) -> String {
        "database".into()
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_locked_and_connection_codes_mean_unavailable() {
        for code in [
            "5", "6", "517", "262", "10", "778", "13", "08006", "08001", "57P01", "53300", "53100",
            "58030",
        ] {
            assert!(unavailable_code(code), "{code}");
        }
        for code in ["19", "2067", "23505", "42P01", "22P02"] {
            assert!(!unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn sqlite_path_reads_file_urls_only() {
        assert_eq!(
            sqlite_path("sqlite://data/c.db?mode=rwc"),
            Some(PathBuf::from("data/c.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/test"), None);
    }
}
