//! A persistent [`OmemoStore`] in one SQLite file per account.
//!
//! Default place: `<user data dir>/jet/omemo-<account>.sqlite`
//! ([`SqliteStore::default_path`], e.g. `~/.local/share/jet/omemo-romeo@montague.lit.sqlite`).
//! The file is created with mode 0600 in a 0700 directory (SQLite gives its
//! `-wal`/`-shm` files the database's mode), and opened in WAL mode with
//! `synchronous=FULL`.
//!
//! # Transactional boundaries (what survives a kill)
//! Every [`OmemoStore`] write is one SQLite transaction: it is either fully
//! on disk or not at all, whatever moment the process dies.
//! * [`OmemoStore::commit_session`] removes the one-time prekey a new
//!   session used *and* saves that session in the same transaction. A
//!   crash before the commit leaves both the prekey and no session (the
//!   message can be decrypted again, nothing was accepted); after it, the
//!   prekey is gone for good. There is no moment where the session is
//!   saved but the prekey still usable, so a replayed PreKeySignalMessage
//!   can never consume a prekey twice.
//! * [`OmemoStore::refill_pre_keys`] inserts all new prekeys and advances
//!   the id counter in one transaction: ids are never handed out twice.
//!   It returns `true` when the bundle must be published again; the caller
//!   publishes after the commit (a crash in between only means the next
//!   refill finds nothing to add, so callers that just opened a store
//!   should publish their bundle once anyway, as `OmemoEnvelope::publish`
//!   does).
//! * Session saves after each ratchet step are single-row upserts of the
//!   versioned [`SessionRecord::to_bytes`] form.
//!
//! The key material is stored unencrypted (like the key files of
//! deployed clients), protected by the file mode.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::error::{random, OmemoError, Result};
use super::keys::{KeyPair, PrivateKey, PublicKey};
use super::ratchet::SessionRecord;
use super::store::{DeviceAddress, OmemoStore, SignedPreKeyRecord, Trust, PRE_KEY_COUNT};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS signed_pre_keys (
    id INTEGER PRIMARY KEY, private BLOB NOT NULL, signature BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pre_keys (id INTEGER PRIMARY KEY, private BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    jid TEXT NOT NULL, device INTEGER NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (jid, device));
CREATE TABLE IF NOT EXISTS identities (
    jid TEXT NOT NULL, device INTEGER NOT NULL, key BLOB NOT NULL, trust INTEGER NOT NULL,
    PRIMARY KEY (jid, device));
CREATE TABLE IF NOT EXISTS trusted_keys (
    jid TEXT NOT NULL, key BLOB NOT NULL, PRIMARY KEY (jid, key));
CREATE TABLE IF NOT EXISTS device_lists (jid TEXT PRIMARY KEY, devices TEXT NOT NULL);
";

fn db(e: rusqlite::Error) -> OmemoError {
    OmemoError::Store(e.to_string())
}

fn trust_to_int(t: Trust) -> i64 {
    match t {
        Trust::Undecided => 0,
        Trust::Trusted => 1,
        Trust::Distrusted => 2,
    }
}

fn trust_from_int(v: i64) -> Result<Trust> {
    match v {
        0 => Ok(Trust::Undecided),
        1 => Ok(Trust::Trusted),
        2 => Ok(Trust::Distrusted),
        _ => Err(OmemoError::Store(format!("bad trust value {v}"))),
    }
}

fn key32(bytes: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| OmemoError::Store(format!("corrupt {what} in the store")))
}

fn private_pair(bytes: Vec<u8>) -> Result<KeyPair> {
    Ok(KeyPair::from_private(PrivateKey::from_bytes(key32(
        bytes,
        "private key",
    )?)))
}

/// A known device of a peer with its identity key and our trust in it
/// (for listing, `jet keys list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDevice {
    /// The device id.
    pub device_id: u32,
    /// Its identity key.
    pub identity_key: PublicKey,
    /// Our trust in it.
    pub trust: Trust,
}

/// An [`OmemoStore`] persisted in SQLite. See the module documentation for
/// the file location and what is atomic.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    device_id: u32,
    registration_id: u32,
    path: PathBuf,
}

impl SqliteStore {
    /// `<data_dir>/jet/omemo-<account>.sqlite`, with `data_dir` the user's
    /// data directory (`$XDG_DATA_HOME` or `~/.local/share` on Linux) unless
    /// given.
    pub fn default_path(data_dir: Option<&Path>, account: &str) -> Result<PathBuf> {
        let base = match data_dir {
            Some(d) => d.to_path_buf(),
            None => dirs::data_dir()
                .ok_or_else(|| OmemoError::Store("no user data directory".into()))?
                .join("jet"),
        };
        if account.is_empty() || account.contains(['/', '\\']) || account.starts_with('.') {
            return Err(OmemoError::Store(format!(
                "account {account:?} cannot name a store file"
            )));
        }
        Ok(base.join(format!("omemo-{account}.sqlite")))
    }

    /// Opens the store at `path`, creating a new device (fresh identity,
    /// random device id, signed prekey, [`PRE_KEY_COUNT`] prekeys) if the
    /// file does not exist yet. Returns the store and whether it was created.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<(Self, bool)> {
        let path = path.as_ref();
        let created = !path.exists();
        if created {
            create_private_file(path)?;
        }
        let mut store = Self::open_conn(path)?;
        if store.is_none() {
            let mut id = [0u8; 4];
            random(&mut id)?;
            let device_id = (u32::from_le_bytes(id) & 0x7fff_ffff).max(1);
            Self::initialize(path, device_id)?;
            store = Self::open_conn(path)?;
        }
        let store =
            store.ok_or_else(|| OmemoError::Store("store initialization did not stick".into()))?;
        Ok((store, created))
    }

    /// Opens an existing store; an error if the file does not exist or holds
    /// no device.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(OmemoError::Store(format!(
                "{} does not exist",
                path.display()
            )));
        }
        Self::open_conn(path)?
            .ok_or_else(|| OmemoError::Store(format!("{} holds no OMEMO device", path.display())))
    }

    /// Creates a store for a new device with the given id at `path` (which
    /// must not hold a device yet).
    pub fn create(path: impl AsRef<Path>, device_id: u32) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            create_private_file(path)?;
        }
        Self::initialize(path, device_id)?;
        Self::open(path)
    }

    fn connect(path: &Path) -> Result<Connection> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        // WAL: a killed writer leaves the last committed state; FULL syncs
        // the WAL on every commit so even a power cut keeps it.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OmemoError::Store(format!("journal mode {mode}, not WAL")));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(conn)
    }

    fn open_conn(path: &Path) -> Result<Option<Self>> {
        let conn = Self::connect(path)?;
        let get = |k: &str| -> Result<Option<i64>> {
            conn.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
                .optional()
                .map_err(db)
        };
        let version = get("schema_version")?;
        let (Some(device_id), Some(registration_id)) = (get("device_id")?, get("registration_id")?)
        else {
            return Ok(None);
        };
        if version != Some(SCHEMA_VERSION) {
            return Err(OmemoError::Store(format!(
                "store schema version {version:?}, this build reads {SCHEMA_VERSION}"
            )));
        }
        Ok(Some(SqliteStore {
            conn,
            device_id: device_id as u32,
            registration_id: registration_id as u32,
            path: path.to_path_buf(),
        }))
    }

    /// Writes a whole new device in one transaction.
    fn initialize(path: &Path, device_id: u32) -> Result<()> {
        if device_id == 0 || device_id > i32::MAX as u32 {
            return Err(OmemoError::Malformed(format!(
                "device id {device_id} outside 1..2^31"
            )));
        }
        let mut conn = Self::connect(path)?;
        let identity = KeyPair::generate()?;
        let mut reg = [0u8; 4];
        random(&mut reg)?;
        let registration_id = (u32::from_le_bytes(reg) % 16380) + 1;
        let spk = KeyPair::generate()?;
        let signature = identity.private.sign(&spk.public.serialize())?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let exists: Option<i64> = tx
            .query_row("SELECT v FROM meta WHERE k = 'device_id'", [], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if exists.is_some() {
            return Err(OmemoError::Store(format!(
                "{} already holds a device",
                path.display()
            )));
        }
        let put = |k: &str, v: &dyn rusqlite::ToSql| {
            tx.execute("INSERT INTO meta (k, v) VALUES (?1, ?2)", params![k, v])
                .map_err(db)
        };
        put("schema_version", &SCHEMA_VERSION)?;
        put("device_id", &(device_id as i64))?;
        put("registration_id", &(registration_id as i64))?;
        put("identity_private", &&identity.private.to_bytes()[..])?;
        put("current_signed_pre_key", &1i64)?;
        put("next_pre_key_id", &1i64)?;
        tx.execute(
            "INSERT INTO signed_pre_keys (id, private, signature) VALUES (1, ?1, ?2)",
            params![&spk.private.to_bytes()[..], &signature[..]],
        )
        .map_err(db)?;
        fill_pre_keys(&tx)?;
        tx.commit().map_err(db)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta_i64(&self, k: &str) -> Result<i64> {
        self.conn
            .query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
            .map_err(db)
    }

    /// Makes a new signed prekey current; the previous one stays for
    /// sessions its bundle started, older ones are deleted. One transaction.
    pub fn rotate_signed_pre_key(&mut self) -> Result<u32> {
        let identity = self.identity_key_pair()?;
        let key_pair = KeyPair::generate()?;
        let signature = identity.private.sign(&key_pair.public.serialize())?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let cur: i64 = tx
            .query_row(
                "SELECT v FROM meta WHERE k = 'current_signed_pre_key'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        let id = cur + 1;
        tx.execute(
            "INSERT INTO signed_pre_keys (id, private, signature) VALUES (?1, ?2, ?3)",
            params![id, &key_pair.private.to_bytes()[..], &signature[..]],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE meta SET v = ?1 WHERE k = 'current_signed_pre_key'",
            [id],
        )
        .map_err(db)?;
        tx.execute("DELETE FROM signed_pre_keys WHERE id < ?1", [cur])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(id as u32)
    }

    /// The devices of `jid` we know an identity key of, with our trust.
    pub fn known_devices(&self, jid: &str) -> Result<Vec<KnownDevice>> {
        let mut st = self
            .conn
            .prepare("SELECT device, key, trust FROM identities WHERE jid = ?1 ORDER BY device")
            .map_err(db)?;
        let rows = st
            .query_map([jid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (device, key, trust) = row.map_err(db)?;
            out.push(KnownDevice {
                device_id: device as u32,
                identity_key: PublicKey::from_bytes(key32(key, "identity key")?),
                trust: trust_from_int(trust)?,
            });
        }
        Ok(out)
    }

    /// The bare JIDs we know devices of.
    pub fn known_jids(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT jid FROM identities ORDER BY jid")
            .map_err(db)?;
        let rows = st.query_map([], |r| r.get(0)).map_err(db)?;
        rows.collect::<std::result::Result<_, _>>().map_err(db)
    }

    /// Marks `key` as verified for `jid` (the user compared fingerprints):
    /// every known device of `jid` with that key becomes
    /// [`Trust::Trusted`], and a device that shows up later with it is
    /// trusted from the start. Returns how many known devices changed.
    pub fn trust_fingerprint(&mut self, jid: &str, key: &PublicKey) -> Result<usize> {
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute(
            "INSERT OR IGNORE INTO trusted_keys (jid, key) VALUES (?1, ?2)",
            params![jid, &key.as_bytes()[..]],
        )
        .map_err(db)?;
        let n = tx
            .execute(
                "UPDATE identities SET trust = 1 WHERE jid = ?1 AND key = ?2",
                params![jid, &key.as_bytes()[..]],
            )
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(n)
    }

    /// Sets our trust in the recorded identity of one device.
    pub fn set_trust(&mut self, address: &DeviceAddress, trust: Trust) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE identities SET trust = ?1 WHERE jid = ?2 AND device = ?3",
                params![trust_to_int(trust), address.jid, address.device_id as i64],
            )
            .map_err(db)?;
        Ok(n > 0)
    }

    /// Remembers the device list `jid` last announced.
    pub fn store_device_list(&mut self, jid: &str, devices: &[u32]) -> Result<()> {
        let text = devices
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.conn
            .execute(
                "INSERT INTO device_lists (jid, devices) VALUES (?1, ?2)
                 ON CONFLICT (jid) DO UPDATE SET devices = excluded.devices",
                params![jid, text],
            )
            .map_err(db)?;
        Ok(())
    }

    /// The device list last stored for `jid` (`None` if never).
    pub fn device_list(&self, jid: &str) -> Result<Option<Vec<u32>>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT devices FROM device_lists WHERE jid = ?1",
                [jid],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        text.map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse()
                        .map_err(|_| OmemoError::Store("corrupt device list".into()))
                })
                .collect()
        })
        .transpose()
    }
}

/// Creates `path` empty with mode 0600 (and its directory with 0700).
fn create_private_file(path: &Path) -> Result<()> {
    let io = |e: std::io::Error| OmemoError::Store(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(io)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map_err(io)?;
    Ok(())
}

/// Tops the prekeys up to [`PRE_KEY_COUNT`] with never-used ids inside the
/// caller's transaction. Returns whether any were added.
fn fill_pre_keys(tx: &rusqlite::Transaction<'_>) -> Result<bool> {
    let have: i64 = tx
        .query_row("SELECT COUNT(*) FROM pre_keys", [], |r| r.get(0))
        .map_err(db)?;
    let mut next: i64 = tx
        .query_row("SELECT v FROM meta WHERE k = 'next_pre_key_id'", [], |r| {
            r.get(0)
        })
        .map_err(db)?;
    let mut added = false;
    for _ in have..PRE_KEY_COUNT as i64 {
        let id = next;
        // Ids are u31 in practice; wrap well before overflow.
        next = if id >= 0x7fff_fffe { 1 } else { id + 1 };
        let k = KeyPair::generate()?;
        tx.execute(
            "INSERT OR REPLACE INTO pre_keys (id, private) VALUES (?1, ?2)",
            params![id, &k.private.to_bytes()[..]],
        )
        .map_err(db)?;
        added = true;
    }
    tx.execute("UPDATE meta SET v = ?1 WHERE k = 'next_pre_key_id'", [next])
        .map_err(db)?;
    Ok(added)
}

impl OmemoStore for SqliteStore {
    fn device_id(&self) -> u32 {
        self.device_id
    }

    fn registration_id(&self) -> u32 {
        self.registration_id
    }

    fn identity_key_pair(&self) -> Result<KeyPair> {
        let b: Vec<u8> = self
            .conn
            .query_row("SELECT v FROM meta WHERE k = 'identity_private'", [], |r| {
                r.get(0)
            })
            .map_err(db)?;
        private_pair(b)
    }

    fn current_signed_pre_key(&self) -> Result<SignedPreKeyRecord> {
        let id = self.meta_i64("current_signed_pre_key")? as u32;
        self.signed_pre_key(id)?
            .ok_or_else(|| OmemoError::Store("no signed prekey".into()))
    }

    fn signed_pre_key(&self, id: u32) -> Result<Option<SignedPreKeyRecord>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT private, signature FROM signed_pre_keys WHERE id = ?1",
                [id as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        row.map(|(p, s)| {
            Ok(SignedPreKeyRecord {
                id,
                key_pair: private_pair(p)?,
                signature: s
                    .try_into()
                    .map_err(|_| OmemoError::Store("corrupt signature".into()))?,
            })
        })
        .transpose()
    }

    fn pre_key(&self, id: u32) -> Result<Option<KeyPair>> {
        let p: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT private FROM pre_keys WHERE id = ?1",
                [id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        p.map(private_pair).transpose()
    }

    fn pre_key_publics(&self) -> Result<Vec<(u32, PublicKey)>> {
        let mut st = self
            .conn
            .prepare("SELECT id, private FROM pre_keys ORDER BY id")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, p) = row.map_err(db)?;
            out.push((id as u32, private_pair(p)?.public));
        }
        Ok(out)
    }

    fn store_pre_key(&mut self, id: u32, key: KeyPair) -> Result<()> {
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute(
            "INSERT OR REPLACE INTO pre_keys (id, private) VALUES (?1, ?2)",
            params![id as i64, &key.private.to_bytes()[..]],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE meta SET v = max(v, ?1) WHERE k = 'next_pre_key_id'",
            [id as i64 + 1],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn remove_pre_key(&mut self, id: u32) -> Result<()> {
        self.conn
            .execute("DELETE FROM pre_keys WHERE id = ?1", [id as i64])
            .map_err(db)?;
        Ok(())
    }

    fn refill_pre_keys(&mut self) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let added = fill_pre_keys(&tx)?;
        tx.commit().map_err(db)?;
        Ok(added)
    }

    fn load_session(&self, address: &DeviceAddress) -> Result<SessionRecord> {
        let b: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT record FROM sessions WHERE jid = ?1 AND device = ?2",
                params![address.jid, address.device_id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        match b {
            None => Ok(SessionRecord::default()),
            Some(b) => SessionRecord::from_bytes(&zeroize::Zeroizing::new(b)),
        }
    }

    fn store_session(&mut self, address: &DeviceAddress, record: &SessionRecord) -> Result<()> {
        upsert_session(&self.conn, address, record)
    }

    fn commit_session(
        &mut self,
        address: &DeviceAddress,
        record: &SessionRecord,
        used_pre_key: Option<u32>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        if let Some(id) = used_pre_key {
            tx.execute("DELETE FROM pre_keys WHERE id = ?1", [id as i64])
                .map_err(db)?;
        }
        upsert_session(&tx, address, record)?;
        tx.commit().map_err(db)
    }

    fn remote_identity(&self, address: &DeviceAddress) -> Result<Option<(PublicKey, Trust)>> {
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .query_row(
                "SELECT key, trust FROM identities WHERE jid = ?1 AND device = ?2",
                params![address.jid, address.device_id as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        row.map(|(k, t)| {
            Ok((
                PublicKey::from_bytes(key32(k, "identity key")?),
                trust_from_int(t)?,
            ))
        })
        .transpose()
    }

    fn save_remote_identity(
        &mut self,
        address: &DeviceAddress,
        key: &PublicKey,
        trust: Trust,
    ) -> Result<()> {
        // A key the user verified before the device showed up is trusted.
        let pre_trusted: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM trusted_keys WHERE jid = ?1 AND key = ?2)",
                params![address.jid, &key.as_bytes()[..]],
                |r| r.get(0),
            )
            .map_err(db)?;
        let trust = if trust == Trust::Undecided && pre_trusted {
            Trust::Trusted
        } else {
            trust
        };
        self.conn
            .execute(
                "INSERT INTO identities (jid, device, key, trust) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (jid, device) DO UPDATE SET key = excluded.key, trust = excluded.trust",
                params![
                    address.jid,
                    address.device_id as i64,
                    &key.as_bytes()[..],
                    trust_to_int(trust)
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn has_verified_device(&self, jid: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM identities WHERE jid = ?1 AND trust = ?2)
                     OR EXISTS (SELECT 1 FROM trusted_keys WHERE jid = ?1)",
                params![jid, trust_to_int(Trust::Trusted)],
                |r| r.get(0),
            )
            .map_err(db)
    }
}

fn upsert_session(
    conn: &Connection,
    address: &DeviceAddress,
    record: &SessionRecord,
) -> Result<()> {
    let bytes = record.to_bytes();
    conn.execute(
        "INSERT INTO sessions (jid, device, record) VALUES (?1, ?2, ?3)
         ON CONFLICT (jid, device) DO UPDATE SET record = excluded.record",
        params![address.jid, address.device_id as i64, &bytes[..]],
    )
    .map_err(db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omemo::manager::{OmemoManager, Recipient};
    use crate::omemo::store::{own_bundle, InMemoryStore};

    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub").join("omemo-romeo@montague.lit.sqlite");
        (d, p)
    }

    #[test]
    fn created_private_and_reopens_with_same_keys() {
        let (_d, p) = tmp();
        let (s, created) = SqliteStore::open_or_create(&p).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dmode = std::fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dmode, 0o700);
        }
        let b1 = own_bundle(&s).unwrap();
        b1.verify().unwrap();
        assert_eq!(b1.pre_keys.len(), PRE_KEY_COUNT as usize);
        let id = s.device_id();
        assert!((1..=i32::MAX as u32).contains(&id));
        // Dropped without any close step (as if killed after the commits).
        std::mem::forget(s);
        let (s2, created) = SqliteStore::open_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(s2.device_id(), id);
        let b2 = own_bundle(&s2).unwrap();
        assert_eq!(b1.identity_key, b2.identity_key);
        assert_eq!(b1.signed_pre_key, b2.signed_pre_key);
        assert_eq!(b1.pre_keys, b2.pre_keys);
    }

    #[test]
    fn open_refuses_missing_file_and_create_refuses_existing_device() {
        let (_d, p) = tmp();
        assert!(SqliteStore::open(&p).is_err());
        SqliteStore::create(&p, 77).unwrap();
        assert!(SqliteStore::create(&p, 78).is_err());
        assert_eq!(SqliteStore::open(&p).unwrap().device_id(), 77);
        assert!(SqliteStore::create(p.with_file_name("x.sqlite"), 0).is_err());
    }

    #[test]
    fn default_path_is_per_account_and_rejects_path_tricks() {
        let d = Path::new("/data");
        assert_eq!(
            SqliteStore::default_path(Some(d), "a@b.c").unwrap(),
            Path::new("/data/omemo-a@b.c.sqlite")
        );
        assert!(SqliteStore::default_path(Some(d), "../x").is_err());
        assert!(SqliteStore::default_path(Some(d), "").is_err());
    }

    #[test]
    fn sessions_survive_a_drop_and_the_prekey_is_consumed_once() {
        let (_d, p) = tmp();
        let bob = SqliteStore::create(&p, 2002).unwrap();
        let bundle = own_bundle(&bob).unwrap();
        let mut bob = OmemoManager::new(bob, "bob@x");
        let mut alice = OmemoManager::new(InMemoryStore::generate(1001).unwrap(), "alice@x");
        let r = [Recipient {
            address: DeviceAddress::new("bob@x", 2002),
            bundle: Some(bundle),
        }];
        let m1 = alice.encrypt_key_transport(&[1; 16], &[2; 12], &r).unwrap();
        let d = bob.decrypt("alice@x", &m1).unwrap();
        assert!(d.new_session);
        assert_eq!(bob.store().pre_key_publics().unwrap().len(), 99);
        assert!(bob.store_mut().refill_pre_keys().unwrap());
        assert!(!bob.store_mut().refill_pre_keys().unwrap());
        let ids: Vec<u32> = bob
            .store()
            .pre_key_publics()
            .unwrap()
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.contains(&101));
        // Kill (no close), reopen: the session is there, the replayed
        // PreKeySignalMessage does not build a second session.
        std::mem::forget(bob);
        let mut bob = OmemoManager::new(SqliteStore::open(&p).unwrap(), "bob@x");
        let addr = DeviceAddress::new("alice@x", 1001);
        assert!(bob.store().load_session(&addr).unwrap().current().is_some());
        let replay = bob.decrypt("alice@x", &m1);
        assert!(replay.is_err(), "replayed message was accepted again");
        // The next message on the session decrypts after the reopen.
        let m2 = alice
            .encrypt_key_transport(&[3; 16], &[4; 12], &r[..1])
            .unwrap();
        let d2 = bob.decrypt("alice@x", &m2).unwrap();
        assert_eq!(&d2.key_material[..], &[3; 16]);
        // Answer: alice's session is confirmed and Bob's ratchet persisted.
        let back = [Recipient {
            address: addr.clone(),
            bundle: None,
        }];
        let m3 = bob
            .encrypt_key_transport(&[5; 16], &[6; 12], &back)
            .unwrap();
        let d3 = alice.decrypt("bob@x", &m3).unwrap();
        assert_eq!(&d3.key_material[..], &[5; 16]);
        let known = bob.store().known_devices("alice@x").unwrap();
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].device_id, 1001);
    }

    #[test]
    fn commit_session_is_atomic_with_prekey_removal() {
        let (_d, p) = tmp();
        let mut s = SqliteStore::create(&p, 9).unwrap();
        let addr = DeviceAddress::new("a@x", 1);
        // A failing transaction (the session insert fails because the table
        // is gone) must leave the prekey in place: nothing half-done.
        s.conn.execute_batch("DROP TABLE sessions").unwrap();
        assert!(s
            .commit_session(&addr, &SessionRecord::default(), Some(5))
            .is_err());
        assert!(
            s.pre_key(5).unwrap().is_some(),
            "prekey consumed without a session"
        );
        s.conn.execute_batch(SCHEMA).unwrap();
        s.commit_session(&addr, &SessionRecord::default(), Some(5))
            .unwrap();
        assert!(s.pre_key(5).unwrap().is_none());
        std::mem::forget(s);
        let s = SqliteStore::open(&p).unwrap();
        assert!(s.pre_key(5).unwrap().is_none());
    }

    #[test]
    fn trust_records_device_lists_and_rotation_persist() {
        let (_d, p) = tmp();
        let mut s = SqliteStore::create(&p, 9).unwrap();
        let k1 = KeyPair::generate().unwrap().public;
        let k2 = KeyPair::generate().unwrap().public;
        let a1 = DeviceAddress::new("peer@x", 1);
        let a2 = DeviceAddress::new("peer@x", 2);
        s.save_remote_identity(&a1, &k1, Trust::Undecided).unwrap();
        // Trust a fingerprint before its device shows up.
        assert_eq!(s.trust_fingerprint("peer@x", &k2).unwrap(), 0);
        s.save_remote_identity(&a2, &k2, Trust::Undecided).unwrap();
        assert_eq!(s.trust_fingerprint("peer@x", &k1).unwrap(), 1);
        s.store_device_list("peer@x", &[1, 2]).unwrap();
        assert_eq!(s.rotate_signed_pre_key().unwrap(), 2);
        assert_eq!(s.rotate_signed_pre_key().unwrap(), 3);
        drop(s);
        let s = SqliteStore::open(&p).unwrap();
        assert_eq!(s.remote_identity(&a1).unwrap(), Some((k1, Trust::Trusted)));
        assert_eq!(s.remote_identity(&a2).unwrap(), Some((k2, Trust::Trusted)));
        assert_eq!(s.device_list("peer@x").unwrap(), Some(vec![1, 2]));
        assert_eq!(s.device_list("other@x").unwrap(), None);
        assert!(s.signed_pre_key(1).unwrap().is_none());
        assert!(s.signed_pre_key(2).unwrap().is_some());
        assert_eq!(s.current_signed_pre_key().unwrap().id, 3);
        own_bundle(&s).unwrap().verify().unwrap();
        assert_eq!(s.known_jids().unwrap(), vec!["peer@x".to_string()]);
    }

    #[test]
    fn fingerprint_round_trip() {
        let k = KeyPair::generate().unwrap().public;
        let f = k.fingerprint();
        assert_eq!(f.len(), 64 + 7);
        assert_eq!(PublicKey::from_fingerprint(&f).unwrap(), k);
        let with_type = format!("05{}", f.replace(' ', "").to_uppercase());
        assert_eq!(PublicKey::from_fingerprint(&with_type).unwrap(), k);
        assert!(PublicKey::from_fingerprint("abcd").is_err());
        assert!(PublicKey::from_fingerprint(&"zz".repeat(32)).is_err());
    }
}
