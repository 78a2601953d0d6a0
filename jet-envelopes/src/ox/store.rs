//! Where JET-OX keeps keys: our own secret key and the public keys known for
//! each peer.
//!
//! A key in the store for `juliet@capulet.lit` is what "a key published by
//! (known for) juliet" means when an envelope is opened: the store is the
//! trust anchor. Keys enter it only through [`OxKeyStore::add_peer_key`],
//! which checks the key is a valid XEP-0373 key of that JID
//! ([`OxPublicKey::validate_for`]); the PEP fetch in [`super::pep`] and the
//! envelope feed it.
//!
//! Pinning: the keys returned by [`OxKeyStore::peer_keys`] are the *trusted*
//! ones (trusted on first use, or marked by the user). A key that shows up
//! later for a peer whose key is already known is kept apart as *pending*
//! ([`OxKeyStore::add_pending_key`]): the envelope neither encrypts to it nor
//! accepts signatures by it until the user marks it
//! ([`OxKeyStore::trust_pending_key`], `jet keys trust PEER FINGERPRINT`).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jet_core::error::EnvelopeError;
use jet_core::jid::BareJid;

use super::keys::{OxPublicKey, OxSecretKey};

/// A key store for JET-OX.
pub trait OxKeyStore: Send + Sync {
    /// Our own secret key, if one was saved; an error if the saved key
    /// belongs to another account.
    fn own_key(&self, jid: &BareJid) -> Result<Option<OxSecretKey>, EnvelopeError>;
    /// Saves our own secret key (replacing an earlier one).
    fn set_own_key(&self, key: &OxSecretKey) -> Result<(), EnvelopeError>;
    /// The public keys known for `jid`.
    fn peer_keys(&self, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError>;
    /// Adds (or replaces, by fingerprint) a public key of `jid` after checking
    /// it is a valid XEP-0373 key of `jid`.
    fn add_peer_key(&self, jid: &BareJid, key: &OxPublicKey) -> Result<(), EnvelopeError>;
    /// Forgets a key of `jid`; whether it was there.
    fn remove_peer_key(&self, jid: &BareJid, fingerprint: &str) -> Result<bool, EnvelopeError>;
    /// Every JID with at least one known key.
    fn peers(&self) -> Result<Vec<BareJid>, EnvelopeError>;
    /// Keys seen for `jid` (valid XEP-0373 keys of `jid`) that are not
    /// trusted yet: neither encrypted to nor accepted.
    fn pending_keys(&self, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError>;
    /// Keeps `key` as a pending key of `jid` (after the same check as
    /// [`Self::add_peer_key`]); nothing changes if it is already trusted.
    fn add_pending_key(&self, jid: &BareJid, key: &OxPublicKey) -> Result<(), EnvelopeError>;
    /// The user verified the pending key `fingerprint` of `jid`: it becomes
    /// trusted. Returns false if no such pending key is stored.
    fn trust_pending_key(&self, jid: &BareJid, fingerprint: &str) -> Result<bool, EnvelopeError>;
}

/// A store in memory (tests, short-lived tools).
#[derive(Default)]
pub struct MemoryKeyStore {
    own: Mutex<Option<OxSecretKey>>,
    peers: Mutex<HashMap<BareJid, Vec<OxPublicKey>>>,
    pending: Mutex<HashMap<BareJid, Vec<OxPublicKey>>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned() -> EnvelopeError {
    EnvelopeError::Store("the key store lock is poisoned".into())
}

impl OxKeyStore for MemoryKeyStore {
    fn own_key(&self, jid: &BareJid) -> Result<Option<OxSecretKey>, EnvelopeError> {
        let own = self.own.lock().map_err(|_| poisoned())?;
        match own.as_ref() {
            Some(k) if k.jid() != jid => Err(EnvelopeError::Store(format!(
                "the stored own key belongs to {}, not {jid}",
                k.jid()
            ))),
            other => Ok(other.cloned()),
        }
    }

    fn set_own_key(&self, key: &OxSecretKey) -> Result<(), EnvelopeError> {
        *self.own.lock().map_err(|_| poisoned())? = Some(key.clone());
        Ok(())
    }

    fn peer_keys(&self, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError> {
        let peers = self.peers.lock().map_err(|_| poisoned())?;
        Ok(peers.get(jid).cloned().unwrap_or_default())
    }

    fn add_peer_key(&self, jid: &BareJid, key: &OxPublicKey) -> Result<(), EnvelopeError> {
        key.validate_for(jid)?;
        if let Some(p) = self.pending.lock().map_err(|_| poisoned())?.get_mut(jid) {
            p.retain(|k| k.fingerprint() != key.fingerprint());
        }
        let mut peers = self.peers.lock().map_err(|_| poisoned())?;
        let keys = peers.entry(jid.clone()).or_default();
        keys.retain(|k| k.fingerprint() != key.fingerprint());
        keys.push(key.clone());
        Ok(())
    }

    fn remove_peer_key(&self, jid: &BareJid, fingerprint: &str) -> Result<bool, EnvelopeError> {
        let mut peers = self.peers.lock().map_err(|_| poisoned())?;
        let Some(keys) = peers.get_mut(jid) else {
            return Ok(false);
        };
        let before = keys.len();
        keys.retain(|k| !k.fingerprint().eq_ignore_ascii_case(fingerprint));
        let removed = keys.len() != before;
        if keys.is_empty() {
            peers.remove(jid);
        }
        Ok(removed)
    }

    fn peers(&self) -> Result<Vec<BareJid>, EnvelopeError> {
        Ok(self
            .peers
            .lock()
            .map_err(|_| poisoned())?
            .keys()
            .cloned()
            .collect())
    }

    fn pending_keys(&self, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError> {
        let pending = self.pending.lock().map_err(|_| poisoned())?;
        Ok(pending.get(jid).cloned().unwrap_or_default())
    }

    fn add_pending_key(&self, jid: &BareJid, key: &OxPublicKey) -> Result<(), EnvelopeError> {
        key.validate_for(jid)?;
        if self
            .peer_keys(jid)?
            .iter()
            .any(|k| k.fingerprint() == key.fingerprint())
        {
            return Ok(());
        }
        let mut pending = self.pending.lock().map_err(|_| poisoned())?;
        let keys = pending.entry(jid.clone()).or_default();
        keys.retain(|k| k.fingerprint() != key.fingerprint());
        keys.push(key.clone());
        Ok(())
    }

    fn trust_pending_key(&self, jid: &BareJid, fingerprint: &str) -> Result<bool, EnvelopeError> {
        let key = {
            let mut pending = self.pending.lock().map_err(|_| poisoned())?;
            let Some(keys) = pending.get_mut(jid) else {
                return Ok(false);
            };
            let Some(i) = keys
                .iter()
                .position(|k| k.fingerprint().eq_ignore_ascii_case(fingerprint))
            else {
                return Ok(false);
            };
            keys.remove(i)
        };
        self.add_peer_key(jid, &key)?;
        Ok(true)
    }
}

/// A store in a directory the caller gives, as ASCII-armored files that
/// `gpg --import` also reads:
///
/// ```text
/// DIR/                             (0700)
///   own.sec.asc                    our secret key (0600, unprotected)
///   peers/<jid>/<FPR>.asc          trusted public keys of <jid> (0600)
///   peers/<jid>/pending/<FPR>.asc  keys of <jid> not trusted yet (0600)
/// ```
///
/// `<jid>` is the bare JID with every byte outside `[A-Za-z0-9@._-]` (and a
/// leading `.`) written as `%XX`, so no JID can name a path outside `peers/`.
/// Files are written to a temporary name and renamed into place.
#[derive(Debug)]
pub struct FileKeyStore {
    dir: PathBuf,
    lock: Mutex<()>,
}

/// Writes `bytes` to `path` with permissions 0600 (on Unix), through a
/// temporary file renamed into place.
pub(crate) fn write_file_0600(path: &Path, bytes: &[u8]) -> Result<(), EnvelopeError> {
    let io = |what: &str, e: std::io::Error| {
        EnvelopeError::Store(format!("{what} {}: {e}", path.display()))
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| io("creating", e))?;
    #[cfg(unix)]
    {
        // The mode above only applies to new files; a stale temporary
        // file keeps its own.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io("setting permissions of", e))?;
    }
    f.write_all(bytes).map_err(|e| io("writing", e))?;
    f.sync_all().map_err(|e| io("syncing", e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io("renaming into", e))
}

fn create_dir_0700(path: &Path) -> Result<(), EnvelopeError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
        .map_err(|e| EnvelopeError::Store(format!("creating {}: {e}", path.display())))
}

/// The directory name for `jid` (see [`FileKeyStore`]).
fn jid_dir_name(jid: &BareJid) -> String {
    let mut out = String::new();
    for (i, b) in jid.to_string().bytes().enumerate() {
        let plain =
            b.is_ascii_alphanumeric() || matches!(b, b'@' | b'_' | b'-') || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn jid_of_dir_name(name: &str) -> Option<BareJid> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()?.parse().ok()
}

impl FileKeyStore {
    /// Opens (creating it with mode 0700 if needed) the store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, EnvelopeError> {
        let dir = dir.into();
        create_dir_0700(&dir.join("peers"))?;
        Ok(FileKeyStore {
            dir,
            lock: Mutex::new(()),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn own_path(&self) -> PathBuf {
        self.dir.join("own.sec.asc")
    }

    fn peer_dir(&self, jid: &BareJid) -> PathBuf {
        self.dir.join("peers").join(jid_dir_name(jid))
    }

    /// The `*.asc` keys in `dir`, each checked to be a key of `jid`
    /// (callers hold the lock).
    fn read_keys(&self, dir: &Path, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(EnvelopeError::Store(format!(
                    "reading {}: {e}",
                    dir.display()
                )))
            }
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| EnvelopeError::Store(format!("reading {}: {e}", dir.display())))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("asc") {
                continue;
            }
            let key = OxPublicKey::from_bytes(&self.read(&path)?)?;
            // Re-check on the way out: a file edited by hand is no
            // more trusted than a key from the network.
            key.validate_for(jid)?;
            keys.push(key);
        }
        keys.sort_by(|a, b| a.fingerprint().cmp(b.fingerprint()));
        Ok(keys)
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, EnvelopeError> {
        fs::read(path).map_err(|e| EnvelopeError::Store(format!("reading {}: {e}", path.display())))
    }
}

impl OxKeyStore for FileKeyStore {
    fn own_key(&self, jid: &BareJid) -> Result<Option<OxSecretKey>, EnvelopeError> {
        let _g = self.lock.lock().map_err(|_| poisoned())?;
        let path = self.own_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = zeroize::Zeroizing::new(self.read(&path)?);
        match OxSecretKey::from_bytes(&bytes, jid) {
            Ok(k) => Ok(Some(k)),
            // Never let a caller overwrite another account's key by
            // mistake: say so instead of "no key".
            Err(EnvelopeError::Untrusted(why)) => Err(EnvelopeError::Store(format!(
                "{} is not a key of {jid}: {why}",
                path.display()
            ))),
            Err(e) => Err(e),
        }
    }

    fn set_own_key(&self, key: &OxSecretKey) -> Result<(), EnvelopeError> {
        let _g = self.lock.lock().map_err(|_| poisoned())?;
        let armored = zeroize::Zeroizing::new(key.to_armored_secret()?);
        write_file_0600(&self.own_path(), armored.as_bytes())
    }

    fn peer_keys(&self, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError> {
        let _g = self.lock.lock().map_err(|_| poisoned())?;
        self.read_keys(&self.peer_dir(jid), jid)
    }

    fn add_peer_key(&self, jid: &BareJid, key: &OxPublicKey) -> Result<(), EnvelopeError> {
        key.validate_for(jid)?;
        let _g = self.lock.lock().map_err(|_| poisoned())?;
        let dir = self.peer_dir(jid);
        create_dir_0700(&dir)?;
        let file = format!("{}.asc", key.fingerprint());
        write_file_0600(&dir.join(&file), key.to_armored()?.as_bytes())?;
        // Trusted now: no longer pending.
        match fs::remove_file(dir.join("pending").join(&file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(EnvelopeError::Store(
                format!("removing the pending copy of {}: {e}", key.fingerprint()),
            )),
            _ => Ok(()),
        }
    }

    fn remove_peer_key(&self, jid: &BareJid, fingerprint: &str) -> Result<bool, EnvelopeError> {
        if !super::elements::is_v4_fingerprint(&fingerprint.to_ascii_uppercase()) {
            return Ok(false);
        }
        let _g = self.lock.lock().map_err(|_| poisoned())?;
        let path = self
            .peer_dir(jid)
            .join(format!("{}.asc", fingerprint.to_ascii_uppercase()));
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(EnvelopeError::Store(format!(
                "removing {}: {e}",
                path.display()
            ))),
        }
    }

    fn pending_keys(&self, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError> {
        let _g = self.lock.lock().map_err(|_| poisoned())?;
        self.read_keys(&self.peer_dir(jid).join("pending"), jid)
    }

    fn add_pending_key(&self, jid: &BareJid, key: &OxPublicKey) -> Result<(), EnvelopeError> {
        key.validate_for(jid)?;
        let _g = self.lock.lock().map_err(|_| poisoned())?;
        let file = format!("{}.asc", key.fingerprint());
        if self.peer_dir(jid).join(&file).exists() {
            return Ok(());
        }
        let dir = self.peer_dir(jid).join("pending");
        create_dir_0700(&dir)?;
        write_file_0600(&dir.join(file), key.to_armored()?.as_bytes())
    }

    fn trust_pending_key(&self, jid: &BareJid, fingerprint: &str) -> Result<bool, EnvelopeError> {
        let fpr = fingerprint.to_ascii_uppercase();
        if !super::elements::is_v4_fingerprint(&fpr) {
            return Ok(false);
        }
        let key = {
            let _g = self.lock.lock().map_err(|_| poisoned())?;
            let path = self
                .peer_dir(jid)
                .join("pending")
                .join(format!("{fpr}.asc"));
            if !path.exists() {
                return Ok(false);
            }
            let key = OxPublicKey::from_bytes(&self.read(&path)?)?;
            if key.fingerprint() != fpr {
                return Err(EnvelopeError::Store(format!(
                    "{} holds key {}, not {fpr}",
                    path.display(),
                    key.fingerprint()
                )));
            }
            fs::remove_file(&path)
                .map_err(|e| EnvelopeError::Store(format!("removing {}: {e}", path.display())))?;
            key
        };
        self.add_peer_key(jid, &key)?;
        Ok(true)
    }

    fn peers(&self) -> Result<Vec<BareJid>, EnvelopeError> {
        let _g = self.lock.lock().map_err(|_| poisoned())?;
        let dir = self.dir.join("peers");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir)
            .map_err(|e| EnvelopeError::Store(format!("reading {}: {e}", dir.display())))?
        {
            let entry = entry
                .map_err(|e| EnvelopeError::Store(format!("reading {}: {e}", dir.display())))?;
            let name = entry.file_name();
            let Some(jid) = name.to_str().and_then(jid_of_dir_name) else {
                continue;
            };
            let has_keys = fs::read_dir(entry.path())
                .map(|mut d| {
                    d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "asc")))
                })
                .unwrap_or(false);
            if has_keys {
                out.push(jid);
            }
        }
        out.sort_by_key(|j| j.to_string());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_dir_names_are_safe_and_reversible() {
        for s in ["juliet@capulet.lit", "a.b-c_d@x.example", "caf\u{e9}@x.lit"] {
            let jid: BareJid = s.parse().unwrap();
            let name = jid_dir_name(&jid);
            assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
            assert_eq!(jid_of_dir_name(&name).unwrap(), jid);
        }
        assert_eq!(jid_dir_name(&"x.lit".parse().unwrap()), "x.lit");
    }
}
