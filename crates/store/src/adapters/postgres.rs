//! Fencing for PostgreSQL: the token is a column, checked in the same
//! statement as the write.
//!
//! Table: `(key text primary key, value bytea not null, fence_token bigint not null)`.
//! A write is one upsert whose `DO UPDATE` only fires when the stored token is
//! not higher than the presented one:
//!
//! ```sql
//! INSERT INTO t AS t (key, value, fence_token) VALUES ($1, $2, $3)
//! ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, fence_token = EXCLUDED.fence_token
//! WHERE t.fence_token <= EXCLUDED.fence_token
//! ```
//!
//! PostgreSQL takes the row lock for the conflict check and evaluates the
//! `WHERE` under it, so the comparison and the write are one atomic step at
//! any isolation level: no read-then-write race. 0 rows affected means a
//! higher token is stored; the adapter then reads it to report
//! `Stale { presented, current }`. Tokens are stored as `bigint`, so tokens
//! above `i64::MAX` are refused (Raft log indexes never get there).

use tokio_postgres::{Client, NoTls};

/// Why a fenced write or read failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("stale fencing token {presented}: row holds token {current}")]
    Stale { presented: u64, current: u64 },
    #[error("token {0} does not fit PostgreSQL's bigint")]
    TokenOutOfRange(u64),
    #[error("bad table name {0:?}: use [a-z_][a-z0-9_]{{0,62}}")]
    BadTable(String),
    #[error("stored fence_token {0} is negative: the table was written by something else")]
    Corrupt(i64),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// The statements of the fenced table `table`: `(create, upsert, select)`.
/// Public so that other clients (the Python package's psycopg helper) run
/// this very SQL rather than a copy of it. The upsert's parameters are
/// `($1 key text, $2 value bytea, $3 token bigint)`; it affects 0 rows when a
/// higher token is stored. The select's parameter is `$1 key`.
pub fn statements(table: &str) -> Result<(String, String, String), PgError> {
    check_table(table)?;
    Ok((
        format!("CREATE TABLE IF NOT EXISTS {table} (key text PRIMARY KEY, value bytea NOT NULL, fence_token bigint NOT NULL)"),
        format!(
            "INSERT INTO {table} AS t (key, value, fence_token) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, fence_token = EXCLUDED.fence_token \
             WHERE t.fence_token <= EXCLUDED.fence_token"
        ),
        format!("SELECT value, fence_token FROM {table} WHERE key = $1"),
    ))
}

/// A fenced key/value table.
pub struct PgFenced {
    client: Client,
    table: String,
    upsert: String,
    select: String,
}

fn check_table(t: &str) -> Result<(), PgError> {
    let mut b = t.bytes();
    let first_ok = b.next().is_some_and(|c| c.is_ascii_lowercase() || c == b'_');
    if first_ok && t.len() <= 63 && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
        Ok(())
    } else {
        Err(PgError::BadTable(t.into()))
    }
}

fn to_i64(token: u64) -> Result<i64, PgError> {
    i64::try_from(token).map_err(|_| PgError::TokenOutOfRange(token))
}

fn to_u64(token: i64) -> Result<u64, PgError> {
    u64::try_from(token).map_err(|_| PgError::Corrupt(token))
}

impl PgFenced {
    /// Connect with a libpq-style `config` (e.g. `host=/var/run/postgresql
    /// user=postgres`) and use `table`, creating it if missing. The
    /// connection runs on a spawned task; no TLS (use a local socket).
    pub async fn connect(config: &str, table: &str) -> Result<Self, PgError> {
        check_table(table)?;
        let (client, conn) = tokio_postgres::connect(config, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "postgres connection ended");
            }
        });
        Self::with_client(client, table).await
    }

    /// Use an existing client.
    pub async fn with_client(client: Client, table: &str) -> Result<Self, PgError> {
        let (create, upsert, select) = statements(table)?;
        client.batch_execute(&create).await?;
        Ok(PgFenced { client, table: table.into(), upsert, select })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Write `value` under `key` with fencing token `token`, in one statement.
    pub async fn write(&self, key: &str, value: &[u8], token: u64) -> Result<(), PgError> {
        let t = to_i64(token)?;
        let rows = self.client.execute(&self.upsert, &[&key, &value, &t]).await?;
        if rows == 1 {
            return Ok(());
        }
        // 0 rows: the WHERE refused. Report what beat us (it can only grow).
        let current = match self.read(key).await? {
            Some((c, _)) => c,
            None => return Err(PgError::Corrupt(-1)),
        };
        Err(PgError::Stale { presented: token, current })
    }

    /// The stored token and value of `key`.
    pub async fn read(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, PgError> {
        let row = self.client.query_opt(&self.select, &[&key]).await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let value: Vec<u8> = r.try_get(0)?;
                let token: i64 = r.try_get(1)?;
                Ok(Some((to_u64(token)?, value)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_validated_because_they_are_interpolated() {
        for bad in ["", "A", "t;drop", "1t", "t-x", &"x".repeat(64)] {
            assert!(check_table(bad).is_err(), "{bad}");
        }
        check_table("fenced_kv1").expect("valid");
    }
}
