//! The per-account record of transport secrets already used
//! ([`jet_core::replay`]), persistent in the data directory:
//!
//! ```text
//! <data dir>/used-secrets-<account>.sqlite   (0600)
//!   used (digest BLOB PRIMARY KEY, at INTEGER)   SHA-256 digests, never the secrets
//! ```
//!
//! Every `jet` process of the account (send, receive, serve, request, on
//! any resource that shares the data directory) records the secrets it
//! seals or opens here, so a `session-initiate` replayed to a restarted
//! `jet serve` is refused. SQLite makes the check-and-insert atomic across
//! processes; 32 bytes per session, kept forever (a secret is never valid
//! again).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use jet_core::jid::BareJid;
use jet_core::replay::UsedSecrets;
use rusqlite::{params, Connection};

/// The record file of `account` in `dir`.
pub fn path(dir: &Path, account: &BareJid) -> PathBuf {
    dir.join(format!("used-secrets-{account}.sqlite"))
}

/// A [`UsedSecrets`] in an SQLite file.
pub struct SqliteUsedSecrets {
    conn: Mutex<Connection>,
}

impl SqliteUsedSecrets {
    /// Opens (creating it, mode 0600) the record at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening the used-secrets record {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS used (digest BLOB PRIMARY KEY, at INTEGER NOT NULL);",
        )
        .with_context(|| format!("initializing {}", path.display()))?;
        Ok(SqliteUsedSecrets {
            conn: Mutex::new(conn),
        })
    }
}

impl UsedSecrets for SqliteUsedSecrets {
    fn record(&self, digest: &[u8; 32]) -> Result<bool, String> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| "the used-secrets record lock is poisoned".to_string())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        conn.execute(
            "INSERT OR IGNORE INTO used (digest, at) VALUES (?1, ?2)",
            params![&digest[..], now],
        )
        .map(|n| n == 1)
        .map_err(|e| format!("writing the used-secrets record: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jet_core::replay::secret_digest;
    use jet_core::TransportSecret;

    /// The record survives the process (a new handle on the same file, as
    /// after a restart), is shared by two handles at once (two `jet`
    /// processes of the account), and is private to the user.
    #[test]
    fn persistent_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let account: BareJid = "romeo@montague.lit".parse().unwrap();
        let p = path(dir.path(), &account);
        let ts = TransportSecret::new(vec![7; 16], vec![9; 12]).unwrap();
        let other = TransportSecret::new(vec![7; 16], vec![8; 12]).unwrap();
        {
            let r = SqliteUsedSecrets::open(&p).unwrap();
            assert!(r.record(&secret_digest(&ts)).unwrap());
            assert!(!r.record(&secret_digest(&ts)).unwrap());
        }
        let a = SqliteUsedSecrets::open(&p).unwrap();
        let b = SqliteUsedSecrets::open(&p).unwrap();
        assert!(!a.record(&secret_digest(&ts)).unwrap());
        assert!(b.record(&secret_digest(&other)).unwrap());
        assert!(!a.record(&secret_digest(&other)).unwrap());
        let bytes = std::fs::read(&p).unwrap();
        assert!(!bytes.windows(16).any(|w| w == [7u8; 16]), "a key on disk");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
