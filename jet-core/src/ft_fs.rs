//! Where received files are written: a partial file that becomes the final
//! file only after authentication and the hash check (feature `tokio`).
//!
//! Invariant: bytes that are not yet authenticated never land under the final
//! file name, and are never trusted by a later resume. [`IncomingFile`]
//! writes to `NAME.jet-part` in the target directory, hashes the plaintext
//! as it goes, and [`IncomingFile::commit`] links it to `NAME` only when the
//! caller says the stream authenticated and the hash matches, refusing to
//! overwrite an existing file. [`IncomingFile::abandon`] keeps the partial
//! file for a resume (truncated to the authenticated length) or removes it.
//!
//! # What survives a crash
//!
//! Beside the partial file lies its record, `NAME.jet-part.state`: which
//! file it is part of (announced size and hash), how the stream was
//! framed, and how many of its bytes are authenticated. It is replaced
//! atomically (written to a temporary file, synced, renamed) and only
//! after the data it covers was flushed and synced, so that after any
//! crash (`kill -9`, power loss) it never claims more than the disk holds.
//! A whole-stream suite authenticates nothing before its tag: its record
//! says 0, and its partial file is never resumed. A chunked suite's record
//! advances at chunk boundaries (at most once a second, or every
//! [`RECORD_EVERY`] bytes). On resume ([`resumable_offset`],
//! [`IncomingFile::create`] with `resume`), the partial file is cut back
//! to the recorded length; a missing, unreadable or inconsistent record
//! (another file, a partial file shorter than the record) means starting
//! from zero.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use jet_core::ft::{FileHash, HashAlgo};
//! use jet_core::ft_fs::{IncomingFile, PartialInfo};
//! let dir = std::env::temp_dir().join(format!("jet-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let info = PartialInfo::default();
//! let mut f = IncomingFile::create(&dir, "../evil/hello.txt", HashAlgo::Sha256, false, info).await.unwrap();
//! f.write(b"hello").await.unwrap();
//! let path = f.commit(Some(&FileHash::of(HashAlgo::Sha256, b"hello"))).await.unwrap();
//! assert_eq!(path, dir.join("hello.txt"));
//! assert_eq!(std::fs::read(&path).unwrap(), b"hello");
//! assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no partial file or record left");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::fs::OpenOptions;

use crate::cipher::Framing;
use crate::error::Error;
use crate::ft::{sanitize_file_name, FileDesc, FileHash, HashAlgo, Hasher};

/// Suffix of partial files.
pub const PARTIAL_SUFFIX: &str = ".jet-part";

/// Suffix of a partial file's durable record (see the module docs).
pub const STATE_SUFFIX: &str = ".jet-part.state";

/// A chunked transfer records its progress at least every this many bytes
/// (and at most once a second otherwise).
pub const RECORD_EVERY: u64 = 16 * 1024 * 1024;

/// How often a chunked transfer records its progress at most, unless
/// [`RECORD_EVERY`] bytes came in since the last record.
const RECORD_INTERVAL: Duration = Duration::from_secs(1);

/// The partial-file path for a final file name in `dir`.
pub fn partial_path(dir: &Path, safe_name: &str) -> PathBuf {
    dir.join(format!("{safe_name}{PARTIAL_SUFFIX}"))
}

/// The record beside the partial file of `safe_name` in `dir`.
pub fn state_path(dir: &Path, safe_name: &str) -> PathBuf {
    dir.join(format!("{safe_name}{STATE_SUFFIX}"))
}

/// Where the record is written before it is renamed into place.
fn state_tmp_path(state: &Path) -> PathBuf {
    let mut s = state.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// The "algorithm" of a partial file's key when the offer had no hash: the
/// value is the offer's date ([`resume_key`]). Never a real hash; it
/// matches only the same key, and such a resumed file is kept only if the
/// sender's checksum of the whole file then matches (`ft_app`).
pub(crate) const RESUME_BY_DATE: &str = "x-jet-date-checksum-to-come";

/// What names the whole file of `desc` for a resume: its best hash; for an
/// offer without one, its date (the size is recorded beside). Only a
/// chunked stream leaves authenticated bytes to resume from (jet), and a
/// file resumed on its date is committed only if the sender's
/// `<checksum/>` of the whole file, which a jet sender sends whenever it
/// resumes, matches.
pub fn resume_key(desc: &FileDesc) -> Option<FileHash> {
    if let Some(h) = desc.best_hash() {
        return Some(h.clone());
    }
    match &desc.date {
        Some(date) if !date.is_empty() && !date.contains(char::is_whitespace) => Some(FileHash {
            algo: RESUME_BY_DATE.into(),
            value: date.clone(),
        }),
        _ => None,
    }
}

/// What a partial file is part of, and how this session's stream is
/// authenticated: what its record says, and what a resume must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialInfo {
    /// The whole file's announced size.
    pub size: Option<u64>,
    /// The hash that names the whole file (the offer's or the request's).
    /// A partial file whose record has no hash is never resumed.
    pub hash: Option<FileHash>,
    /// The chunk length of a chunked stream, whose released bytes are
    /// authenticated chunk by chunk; `None`: nothing is authenticated before
    /// the end of the stream (whole-stream suites, or no JET).
    pub chunk_len: Option<u64>,
}

impl PartialInfo {
    /// The record of `desc` (its size and [`resume_key`]) received over a
    /// stream of `framing`.
    pub fn of(desc: &FileDesc, framing: Option<Framing>) -> Self {
        PartialInfo {
            size: desc.size,
            hash: resume_key(desc),
            chunk_len: match framing {
                Some(Framing::Chunked { chunk_len }) if chunk_len > 0 => Some(chunk_len as u64),
                _ => None,
            },
        }
    }
}

/// The parsed record of a partial file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    info: PartialInfo,
    authenticated: u64,
}

const STATE_MAGIC: &str = "jet-part-state 1";

impl State {
    fn render(&self) -> String {
        let framing = match self.info.chunk_len {
            Some(c) => format!("chunked {c}"),
            None => "whole".into(),
        };
        let size = self
            .info
            .size
            .map(|s| s.to_string())
            .unwrap_or_else(|| "none".into());
        let hash = self
            .info
            .hash
            .as_ref()
            .map(|h| format!("{} {}", h.algo, h.value))
            .unwrap_or_else(|| "none".into());
        format!(
            "{STATE_MAGIC}\nframing {framing}\nsize {size}\nhash {hash}\nauthenticated {}\n",
            self.authenticated
        )
    }

    /// Strict: anything but exactly what [`render`](Self::render) writes
    /// is no record at all.
    fn parse(text: &str) -> Option<State> {
        let mut lines = text.strip_suffix('\n')?.split('\n');
        if lines.next()? != STATE_MAGIC {
            return None;
        }
        let chunk_len = match lines.next()?.strip_prefix("framing ")? {
            "whole" => None,
            c => Some(
                c.strip_prefix("chunked ")?
                    .parse::<u64>()
                    .ok()
                    .filter(|&c| c > 0)?,
            ),
        };
        let size = match lines.next()?.strip_prefix("size ")? {
            "none" => None,
            s => Some(s.parse::<u64>().ok()?),
        };
        let hash = match lines.next()?.strip_prefix("hash ")? {
            "none" => None,
            h => {
                let (algo, value) = h.split_once(' ')?;
                if algo.is_empty() || value.is_empty() || value.contains(' ') {
                    return None;
                }
                Some(FileHash {
                    algo: algo.into(),
                    value: value.into(),
                })
            }
        };
        let authenticated = lines
            .next()?
            .strip_prefix("authenticated ")?
            .parse::<u64>()
            .ok()?;
        if lines.next().is_some() {
            return None;
        }
        Some(State {
            info: PartialInfo {
                size,
                hash,
                chunk_len,
            },
            authenticated,
        })
    }

    /// How many bytes of a partial file of `len` bytes may be kept for a
    /// transfer of `size` and `hash` (`None`: not known yet): the recorded
    /// authenticated length when everything agrees, else 0.
    fn resumable(&self, len: u64, size: Option<u64>, hash: Option<&FileHash>) -> u64 {
        let n = self.authenticated;
        let same_file = match (&self.info.hash, hash) {
            (Some(ours), Some(theirs)) => {
                ours.matches(theirs) || (ours.algo == RESUME_BY_DATE && ours == theirs)
            }
            _ => false,
        };
        let size_ok = match (self.info.size, size) {
            (Some(a), Some(b)) => a == b && n <= a,
            (Some(a), None) => n <= a,
            (None, Some(b)) => n <= b,
            (None, None) => true,
        };
        if n > len || !same_file || !size_ok {
            return 0;
        }
        n
    }
}

/// Writes `state` durably: to a temporary file, synced, renamed over the
/// record, and the directory synced (best effort: not every file system
/// lets a directory be synced).
fn write_state(path: &Path, state: &State) -> io::Result<()> {
    use std::io::Write;
    let tmp = state_tmp_path(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(state.render().as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The resume offset for the partial file of `safe_name` in `dir`, for a
/// transfer of `size` (when known) and `hash`: the authenticated length its
/// record holds when the record is readable, names the same file and fits
/// the partial file; 0 otherwise (start from zero).
pub fn resumable_offset(
    dir: &Path,
    safe_name: &str,
    size: Option<u64>,
    hash: Option<&FileHash>,
) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(partial_path(dir, safe_name)) else {
        return 0;
    };
    if !meta.is_file() {
        return 0;
    }
    let Some(state) = std::fs::read_to_string(state_path(dir, safe_name))
        .ok()
        .and_then(|t| State::parse(&t))
    else {
        return 0;
    };
    state.resumable(meta.len(), size, hash)
}

/// `safe_name` with ` (n)` before its extension: `report.pdf` becomes
/// `report (1).pdf`, `notes` becomes `notes (1)`. `None` when the result
/// is not a safe file name (too long).
pub fn numbered_name(safe_name: &str, n: u32) -> Option<String> {
    let (stem, ext) = match safe_name.rfind('.') {
        Some(i) if i > 0 => safe_name.split_at(i),
        _ => (safe_name, ""),
    };
    let name = format!("{stem} ({n}){ext}");
    (sanitize_file_name(&name).ok().as_deref() == Some(name.as_str())).then_some(name)
}

/// Numbered names tried at most before giving up on a free one.
pub const MAX_NUMBERED: u32 = 999;

/// A free name for a file whose name `safe_name` is taken in `dir`:
/// the first `NAME (n).EXT` with neither a file nor a partial file under
/// it, or, with `resume`, an earlier one whose partial file's record
/// vouches for bytes of this very file (`size`, `hash`), so that an
/// interrupted renamed transfer continues where it stopped. `None` when
/// [`MAX_NUMBERED`] names are all taken. The name is only a proposal:
/// [`IncomingFile::create`] and [`IncomingFile::commit`] still refuse to
/// overwrite anything that appears meanwhile.
pub fn free_name(
    dir: &Path,
    safe_name: &str,
    size: Option<u64>,
    hash: Option<&FileHash>,
    resume: bool,
) -> Option<String> {
    let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    for n in 1..=MAX_NUMBERED {
        let name = numbered_name(safe_name, n)?;
        if taken(&dir.join(&name)) {
            continue;
        }
        if taken(&partial_path(dir, &name)) || taken(&state_path(dir, &name)) {
            if resume && resumable_offset(dir, &name, size, hash) > 0 {
                return Some(name);
            }
            continue;
        }
        return Some(name);
    }
    None
}

/// Takes the exclusive advisory lock (`flock`) of a partial file for as
/// long as `f` is open; refuses one another transfer holds. `Ok(false)`:
/// the file system has no locks (some network mounts).
fn lock_partial(f: &std::fs::File, partial_name: &str) -> Result<bool, Error> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Application(format!(
            "{partial_name} is being written by another transfer of the same name; \
             try again once it has ended"
        ))),
        Err(std::fs::TryLockError::Error(e)) if locks_unsupported(&e) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Io(e)),
    }
}

/// Whether a lock error means the file system has no locks.
fn locks_unsupported(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ENOLCK) {
        // An NFS mount without a lock manager.
        return true;
    }
    e.kind() == io::ErrorKind::Unsupported
}

/// The length of the opened partial file `f`, after checking that `path`
/// still names it: a transfer that committed it meanwhile linked it under
/// its final name and unlinked `path`, and that file must not be touched.
fn still_named(f: &std::fs::File, path: &Path, partial_name: &str) -> Result<u64, Error> {
    let ours = f.metadata()?;
    let moved = || {
        Error::Application(format!(
            "{partial_name} changed while it was opened (another transfer of the same name \
             ended); try again"
        ))
    };
    let now = std::fs::symlink_metadata(path).map_err(|_| moved())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (ours.dev(), ours.ino()) != (now.dev(), now.ino()) {
            return Err(moved());
        }
    }
    #[cfg(not(unix))]
    let _ = now;
    Ok(ours.len())
}

/// A file being received.
#[derive(Debug)]
pub struct IncomingFile {
    final_path: PathBuf,
    partial: PathBuf,
    state: PathBuf,
    /// The partial file's name alone, for messages (which may reach the
    /// peer: our directories must not).
    partial_name: String,
    info: PartialInfo,
    /// The partial file while data comes in (written on its own thread).
    sink: Option<Sink>,
    /// The partial file once the sink is closed ([`finish`](Self::finish)).
    closed: Option<std::fs::File>,
    /// The hash computed of the file (`None`: not hashed).
    algo: Option<HashAlgo>,
    /// The hash, once the sink is closed (`Some(None)`: not hashed).
    hashed: Option<Option<FileHash>>,
    /// Bytes handed to the sink (its thread may not have written them yet:
    /// what is kept after a cancellation is cut to what it wrote).
    written: u64,
    /// The length this session started from (authenticated earlier).
    resumed_from: u64,
    /// Bytes known to be authenticated (what survives a cancellation).
    authenticated: u64,
    /// What the record on disk says.
    recorded: u64,
    last_record: Instant,
    record_interval: Duration,
    /// On commit, a final name taken meanwhile gives way to the next free
    /// numbered variant of this name ([`rename_if_taken`](Self::rename_if_taken)).
    rename_base: Option<String>,
}

impl IncomingFile {
    /// Starts receiving `peer_name` (sanitized to one path component) into
    /// `dir`; `info` says which file it is and how its stream is framed.
    /// Fails if the final file exists. With `resume`, an existing partial
    /// file is cut back to what its record says is authenticated for the
    /// same file (possibly nothing), hashed, and writing continues at its
    /// end ([`offset`](Self::offset)); otherwise an existing partial file is
    /// an error (another transfer may be using it). With `algo` `None` the
    /// file is not hashed (a stream whose cipher authenticates every byte
    /// needs no hash: [`finish`](Self::finish) then returns `None`).
    pub async fn create(
        dir: &Path,
        peer_name: &str,
        algo: impl Into<Option<HashAlgo>>,
        resume: bool,
        info: PartialInfo,
    ) -> Result<Self, Error> {
        let algo = algo.into();
        let name = sanitize_file_name(peer_name)?;
        let final_path = dir.join(&name);
        if tokio::fs::symlink_metadata(&final_path).await.is_ok() {
            return Err(Error::Application(format!(
                "{name} already exists; jet never overwrites a file"
            )));
        }
        let partial = partial_path(dir, &name);
        let state = state_path(dir, &name);
        let partial_name = format!("{name}{PARTIAL_SUFFIX}");
        let hasher = algo.map(Hasher::new);
        let mut written = 0;
        let existing = tokio::fs::symlink_metadata(&partial).await.ok();
        let is_new = existing.is_none();
        let file = match existing {
            Some(meta) if resume => {
                if !meta.is_file() {
                    return Err(Error::Application(format!(
                        "{partial_name} exists and is not a regular file"
                    )));
                }
                let f = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&partial)
                    .await?;
                let f = f.into_std().await;
                // Before anything is read or cut: another transfer may be
                // writing it, or have just committed it under its final
                // name (then the path no longer names what we opened).
                if !lock_partial(&f, &partial_name)? {
                    // Unlocked, a second transfer of this name could cut
                    // it and write into it beside us.
                    return Err(Error::Application(format!(
                        "{partial_name} cannot be locked on this file system, so it is not \
                         resumed (another transfer could be writing it); remove it to receive \
                         the file again"
                    )));
                }
                let len = still_named(&f, &partial, &partial_name)?;
                let recorded = match tokio::fs::read_to_string(&state).await {
                    Ok(t) => State::parse(&t),
                    Err(_) => None,
                };
                let keep = recorded
                    .as_ref()
                    .map_or(0, |s| s.resumable(len, info.size, info.hash.as_ref()));
                // Authenticated bytes of another file (another size, hash
                // or date): that file's transfer may still be resumed, so
                // they are not cut away for this one.
                if let Some(theirs) = recorded.filter(|s| {
                    keep == 0
                        && s.info.hash.is_some()
                        && s.authenticated > 0
                        && s.authenticated <= len
                }) {
                    return Err(Error::Application(format!(
                        "{partial_name} holds {} authenticated bytes of another file of this \
                         name (resume that transfer, or remove the file)",
                        theirs.authenticated
                    )));
                }
                // What the record does not vouch for goes. The kept part is
                // hashed later, by the writing thread, between and after
                // the writes: not now, while the peer waits to send.
                let f = tokio::task::spawn_blocking(move || f.set_len(keep).map(|()| f))
                    .await
                    .map_err(|e| Error::Io(io::Error::other(e)))??;
                written = keep;
                f
            }
            Some(_) => {
                return Err(Error::Application(format!(
                    "{partial_name} exists: an earlier transfer was interrupted (resume it, or remove the file)"
                )))
            }
            None => OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&partial)
                .await
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Error::Application(format!(
                            "{partial_name} exists: an earlier transfer was interrupted (resume it, or remove the file)"
                        ))
                    } else {
                        Error::Io(e)
                    }
                })?
                .into_std()
                .await,
        };
        // Held until the file is closed: a second transfer of the same
        // name (`--resume` in another jet) cannot take it over meanwhile.
        if is_new {
            // Unlocked where the file system has none: `create_new` made it
            // ours alone, and a resume will not take it over unlocked.
            if let Err(e) = lock_partial(&file, &partial_name) {
                // Another transfer locked it first: it is theirs now.
                if !matches!(&e, Error::Application(_)) {
                    let _ = std::fs::remove_file(&partial);
                }
                return Err(e);
            }
        }
        // Nothing of the file is hashed yet (a resumed prefix included).
        let sink = Sink::start(file, hasher, written, 0)?;
        let mut me = IncomingFile {
            final_path,
            partial,
            state,
            partial_name,
            info,
            sink: Some(sink),
            closed: None,
            algo,
            hashed: None,
            written,
            resumed_from: written,
            // A resumed prefix was authenticated by an earlier session.
            authenticated: written,
            recorded: written,
            last_record: Instant::now(),
            record_interval: RECORD_INTERVAL,
            rename_base: None,
        };
        // Before any new byte lands: a stale record (of an earlier file of
        // this name) must not vouch for it, and a left-over temporary record
        // goes.
        me.record(written).await?;
        Ok(me)
    }

    /// When the final name is taken by the time of the commit (a file
    /// created meanwhile), commit under the next free numbered variant of
    /// `base` ([`numbered_name`]) instead of failing; never overwriting
    /// either way.
    pub fn rename_if_taken(&mut self, base: &str) {
        self.rename_base = Some(base.to_string());
    }

    /// Bytes already in the partial file (the resume offset).
    pub fn offset(&self) -> u64 {
        self.written
    }

    /// The final path the file will have.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// The partial path being written.
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// The record's path.
    pub fn state_path(&self) -> &Path {
        &self.state
    }

    /// Writes the record: `n` bytes authenticated.
    async fn record(&mut self, n: u64) -> Result<(), Error> {
        let state = State {
            info: self.info.clone(),
            authenticated: n,
        };
        let path = self.state.clone();
        tokio::task::spawn_blocking(move || write_state(&path, &state))
            .await
            .map_err(|e| Error::Io(io::Error::other(e)))?
            .map_err(|e| {
                Error::Io(io::Error::new(
                    e.kind(),
                    format!("recording {}: {e}", self.partial_name),
                ))
            })?;
        self.recorded = n;
        self.last_record = Instant::now();
        Ok(())
    }

    /// The longest prefix that may be kept: the authenticated bytes, cut to
    /// a chunk boundary of a chunked stream, never below what an earlier
    /// session authenticated.
    fn keepable(&self) -> u64 {
        let n = self.authenticated.min(self.written);
        match self.info.chunk_len {
            Some(c) => (n / c * c).max(self.resumed_from),
            None => n,
        }
    }

    /// Records the progress durably when it is due: the data it covers is
    /// synced first.
    async fn maybe_record(&mut self) -> Result<(), Error> {
        let keep = self.keepable();
        if keep <= self.recorded
            || (keep - self.recorded < RECORD_EVERY
                && self.last_record.elapsed() < self.record_interval)
        {
            return Ok(());
        }
        let name = &self.partial_name;
        let sink = self.sink.as_mut().ok_or_else(closed)?;
        if let Err(e) = sink.sync().await {
            return Err(match e {
                Some(e) => Error::Io(io::Error::new(e.kind(), format!("syncing {name}: {e}"))),
                None => self.close_sink().await.err().unwrap_or_else(closed),
            });
        }
        self.record(keep).await
    }

    /// Ends the writing thread: the file and the hash come back, `written`
    /// becomes what it really wrote, and its write error (if any) is
    /// returned, naming the partial file.
    async fn close_sink(&mut self) -> Result<(), Error> {
        self.close_sink_hashing(false).await
    }

    /// [`close_sink`](Self::close_sink); with `hash`, the writing thread
    /// first hashes what of the file it has not hashed yet.
    async fn close_sink_hashing(&mut self, hash: bool) -> Result<(), Error> {
        let Some(sink) = self.sink.take() else {
            return Ok(());
        };
        let done = sink.close(hash).await?;
        self.written = self.written.min(done.written);
        self.authenticated = self.authenticated.min(self.written);
        self.closed = Some(done.file);
        self.hashed = Some(done.hasher.map(Hasher::finish));
        match done.error {
            Some(e) => Err(Error::Io(io::Error::new(
                e.kind(),
                format!("writing {}: {e}", self.partial_name),
            ))),
            None => Ok(()),
        }
    }

    /// Waits until the writing thread hashed the whole file so far.
    #[cfg(test)]
    async fn hash_caught_up(&mut self) {
        let sink = self.sink.as_mut().unwrap();
        sink.tx
            .as_ref()
            .unwrap()
            .send(SinkCmd::CatchUp)
            .await
            .unwrap();
        sink.sync().await.unwrap();
    }

    /// Waits until everything queued is written and synced (tests that
    /// simulate a crash need the bytes on disk first).
    #[cfg(test)]
    async fn settle(&mut self) {
        self.sink.as_mut().unwrap().sync().await.unwrap();
    }

    /// Ends the writing: everything is in the file (not yet synced). Returns
    /// the hash of the whole file (`None` when created without an
    /// algorithm); a failed write shows here at the latest.
    pub async fn finish(&mut self) -> Result<Option<FileHash>, Error> {
        self.close_sink_hashing(true).await?;
        self.hashed.clone().ok_or_else(closed)
    }

    /// Appends plaintext. A failed write (a full disk, a file-size limit)
    /// names the partial file in its error (its name only: the text may
    /// reach the peer in a `session-terminate`, our directories may not).
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let spare = self.spare()?;
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            self.advance(n).await?;
        }
        Ok(())
    }

    /// Space to read the next plaintext straight into (the writing
    /// thread's next buffer; never empty): [`advance`](Self::advance) then
    /// appends what was put there, as [`write`](Self::write) does without
    /// its copy.
    pub fn spare(&mut self) -> Result<&mut [u8], Error> {
        Ok(self.sink.as_mut().ok_or_else(closed)?.spare())
    }

    /// Appends the first `n` bytes of [`spare`](Self::spare).
    pub async fn advance(&mut self, n: usize) -> Result<(), Error> {
        let sink = self.sink.as_mut().ok_or_else(closed)?;
        if sink.advance(n).await.is_err() {
            return Err(self.close_sink().await.err().unwrap_or_else(closed));
        }
        // Queued, not necessarily written yet: whatever ends this file cuts
        // it to what the thread really wrote.
        self.written += n as u64;
        // Only now, with the bytes in `spare` taken: recording syncs, which
        // hands the buffer being filled to the thread.
        self.maybe_record().await
    }

    /// Records that the first `n` bytes are authenticated (chunked mode:
    /// every released chunk). If the transfer is cancelled (this value is
    /// dropped without [`commit`](Self::commit) or
    /// [`abandon`](Self::abandon)), the partial file is cut back to these
    /// bytes (to a chunk boundary in chunked mode), or removed when there
    /// are none. The durable record follows at the next
    /// [`write`](Self::write) when due.
    pub fn set_authenticated(&mut self, n: u64) {
        self.authenticated = n.min(self.written);
    }

    /// Removes the partial file and its record.
    async fn remove_all(&self) -> Result<(), Error> {
        let (partial, state) = (self.partial.clone(), self.state.clone());
        tokio::task::spawn_blocking(move || {
            remove_if_exists(&partial)?;
            remove_if_exists(&state)?;
            remove_if_exists(&state_tmp_path(&state))
        })
        .await
        .map_err(|e| Error::Io(io::Error::other(e)))??;
        Ok(())
    }

    /// Call only once the stream authenticated. Checks `expected` (when the
    /// peer gave a hash), syncs, and links the partial file to the final name
    /// without overwriting. On a hash mismatch the partial file is removed.
    pub async fn commit(mut self, expected: Option<&FileHash>) -> Result<PathBuf, Error> {
        let got = self.finish().await?;
        // Out of `self`, so that `Drop` touches nothing from here on (a
        // commit cancelled after the link must not cut the final file),
        // and held open (locked) until the names are settled.
        let file = std::sync::Arc::new(self.closed.take().ok_or_else(closed)?);
        let r = self.link(&file, got, expected).await;
        drop(file);
        r
    }

    /// [`commit`](Self::commit) once the data is written and hashed.
    async fn link(
        &mut self,
        file: &std::sync::Arc<std::fs::File>,
        got: Option<FileHash>,
        expected: Option<&FileHash>,
    ) -> Result<PathBuf, Error> {
        let f = file.clone();
        tokio::task::spawn_blocking(move || f.sync_all())
            .await
            .map_err(|e| Error::Io(io::Error::other(e)))??;
        if let Some(exp) = expected {
            if exp.algorithm().is_some() && exp.algorithm() == self.algo {
                let got = got.ok_or_else(closed)?;
                if !exp.matches(&got) {
                    self.remove_all().await?;
                    return Err(Error::Application(format!(
                        "the received file's {} does not match the sender's hash: got {}, expected {}",
                        exp.algo, got.value, exp.value
                    )));
                }
            }
        }
        // hard_link fails if the target exists: no overwrite, even in a race.
        let mut linked = tokio::fs::hard_link(&self.partial, &self.final_path).await;
        if let Some(base) = self.rename_base.clone() {
            let dir = self.final_path.parent().map(Path::to_path_buf);
            let mut n = 0;
            while matches!(&linked, Err(e) if e.kind() == io::ErrorKind::AlreadyExists)
                && n < MAX_NUMBERED
            {
                n += 1;
                let (Some(dir), Some(name)) = (&dir, numbered_name(&base, n)) else {
                    break;
                };
                // A name another transfer is receiving into is not free.
                if std::fs::symlink_metadata(partial_path(dir, &name)).is_ok() {
                    continue;
                }
                let candidate = dir.join(name);
                linked = tokio::fs::hard_link(&self.partial, &candidate).await;
                if linked.is_ok() {
                    self.final_path = candidate;
                }
            }
        }
        linked.map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                let name = self
                    .final_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Error::Application(format!(
                    "{name} appeared while receiving; not overwritten (data kept in {})",
                    self.partial_name
                ))
            } else {
                Error::Io(e)
            }
        })?;
        self.remove_all().await?;
        Ok(self.final_path.clone())
    }

    /// Gives up. With `keep_authenticated = Some(n)`, the partial file is
    /// truncated to its first `n` bytes (the authenticated part; in chunked
    /// mode to the chunk boundary below), recorded and kept for a resume;
    /// with `None`, or when nothing is left, it is removed with its record.
    pub async fn abandon(mut self, keep_authenticated: Option<u64>) -> Result<(), Error> {
        // A write error does not matter here: what is kept is cut to what
        // the thread wrote.
        let _ = self.close_sink().await;
        let keep = keep_authenticated.map(|n| {
            self.authenticated = n.min(self.written);
            self.keepable()
        });
        // Out of `self` (`Drop` then leaves it alone) and open (locked)
        // while it is cut and recorded, or removed.
        let file = self.closed.take().map(std::sync::Arc::new);
        match (keep, &file) {
            (Some(n), Some(f)) if n > 0 => {
                let f = f.clone();
                tokio::task::spawn_blocking(move || f.set_len(n).and_then(|()| f.sync_all()))
                    .await
                    .map_err(|e| Error::Io(io::Error::other(e)))??;
                self.record(n).await
            }
            _ => self.remove_all().await,
        }
    }
}

#[cfg(test)]
impl IncomingFile {
    /// As if the process were killed now (after what it holds reached the
    /// file): no truncation, no record, and the file closed, which
    /// releases its lock as the kernel would.
    fn kill(mut self) {
        if let Some(sink) = self.sink.take() {
            drop(sink.close_blocking());
        }
        self.closed = None;
        std::mem::forget(self);
    }
}

impl Drop for IncomingFile {
    /// Cancellation safety: a transfer dropped mid-way (its task aborted, the
    /// peer gone, the user's Ctrl-C) keeps only authenticated bytes in the
    /// partial file, and its record says so.
    fn drop(&mut self) {
        // The partial file itself (open, so still locked): cut through it,
        // not through its name.
        let (open, file) = match self.sink.take() {
            Some(sink) => {
                // Waits for the thread to write what it holds (a few
                // buffers at most); the rest was never written.
                match sink.close_blocking() {
                    Some(done) => {
                        self.written = self.written.min(done.written);
                        (true, Some(done.file))
                    }
                    None => {
                        // It panicked: what it wrote is unknown, keep nothing.
                        self.written = 0;
                        (true, None)
                    }
                }
            }
            None => {
                let f = self.closed.take();
                (f.is_some(), f)
            }
        };
        if open {
            let keep = self.keepable();
            if keep == 0 {
                let _ = remove_if_exists(&self.partial);
                let _ = remove_if_exists(&self.state);
                let _ = remove_if_exists(&state_tmp_path(&self.state));
            } else if let Some(f) = &file {
                if f.set_len(keep).and_then(|()| f.sync_all()).is_ok() {
                    let state = State {
                        info: self.info.clone(),
                        authenticated: keep,
                    };
                    let _ = write_state(&self.state, &state);
                }
            }
        }
        drop(file);
    }
}

/// Size of the buffers handed to the writing thread.
const SINK_BUF: usize = 1024 * 1024;

/// How many full buffers may wait for the writing thread.
const SINK_DEPTH: usize = 2;

/// What the writing thread is asked to do, in order.
enum SinkCmd {
    /// Append and hash.
    Data(Vec<u8>),
    /// Sync the data written so far (`sync_data`), then answer.
    Sync(tokio::sync::oneshot::Sender<io::Result<()>>),
    /// Hash whatever of the file is not hashed yet (the end: the hash is
    /// wanted).
    CatchUp,
}

/// What the writing thread hands back when it ends.
struct SinkDone {
    file: std::fs::File,
    /// `None` also when the hash did not cover the whole file (closed
    /// without [`SinkCmd::CatchUp`]: nobody wants it).
    hasher: Option<Hasher>,
    /// Bytes really in the file (this session's start included).
    written: u64,
    error: Option<io::Error>,
}

/// The partial file while data comes in: large writes and the hash on a
/// dedicated thread fed by a bounded queue of buffers, so the task that
/// reads the socket neither waits for each write nor hashes. Each buffer
/// is written whole (no flush per piece); [`Sink::sync`] waits until all
/// earlier data is written and synced. The hash covers the file from its
/// start: data is hashed as it is written once the hash has caught up
/// with the file; before that (a resumed prefix not hashed yet) the
/// thread reads back and hashes the next piece of the file whenever no
/// data waits, so a large prefix never holds up the transfer.
struct Sink {
    tx: Option<tokio::sync::mpsc::Sender<SinkCmd>>,
    /// Emptied buffers coming back from the thread, for reuse.
    free: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    /// The buffer being filled: its first `filled` bytes are data.
    buf: Vec<u8>,
    filled: usize,
    thread: Option<std::thread::JoinHandle<SinkDone>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("buffered", &self.filled)
            .finish()
    }
}

impl Sink {
    /// Starts the writing thread for `file`, which holds `written` bytes
    /// of which the first `hashed` are already in `hasher`. A `file`
    /// whose first bytes are still to be hashed must be readable and in
    /// append mode (reading back moves its offset; appends ignore it).
    fn start(
        file: std::fs::File,
        hasher: Option<Hasher>,
        written: u64,
        hashed: u64,
    ) -> io::Result<Self> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SinkCmd>(SINK_DEPTH);
        let (free_tx, free) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("jet-file-sink".into())
            .spawn(move || {
                use std::io::Write;
                use tokio::sync::mpsc::error::TryRecvError;
                let mut done = SinkDone {
                    file,
                    hasher,
                    written,
                    error: None,
                };
                let mut hashed = hashed;
                let mut scratch = Vec::new();
                loop {
                    let behind = done.hasher.is_some() && hashed < done.written;
                    let cmd = if behind {
                        match rx.try_recv() {
                            Ok(cmd) => Some(cmd),
                            Err(TryRecvError::Empty) => {
                                // Idle: hash the next piece already written.
                                if let Err(e) =
                                    catch_up(&mut done, &mut hashed, &mut scratch, HASH_STEP)
                                {
                                    done.error = Some(e);
                                    break;
                                }
                                continue;
                            }
                            Err(TryRecvError::Disconnected) => None,
                        }
                    } else {
                        rx.blocking_recv()
                    };
                    let Some(cmd) = cmd else { break };
                    match cmd {
                        SinkCmd::Data(b) => {
                            if let Err(e) = done.file.write_all(&b) {
                                done.error = Some(e);
                                break;
                            }
                            if let Some(h) = done.hasher.as_mut().filter(|_| !behind) {
                                h.update(&b);
                                hashed += b.len() as u64;
                            }
                            done.written += b.len() as u64;
                            // Back as it is: refilled, not zeroed again.
                            let _ = free_tx.send(b);
                        }
                        SinkCmd::Sync(reply) => {
                            let r = done.file.sync_data();
                            let failed = r.is_err();
                            let _ = reply.send(r);
                            if failed {
                                break;
                            }
                        }
                        SinkCmd::CatchUp => {
                            if let Err(e) = catch_up(&mut done, &mut hashed, &mut scratch, u64::MAX)
                            {
                                done.error = Some(e);
                                break;
                            }
                        }
                    }
                }
                if hashed < done.written {
                    done.hasher = None;
                }
                done
            })?;
        Ok(Sink {
            tx: Some(tx),
            free,
            buf: Vec::new(),
            filled: 0,
            thread: Some(thread),
        })
    }

    /// The free part of the buffer being filled (never empty), to read
    /// the next data straight into; [`advance`](Self::advance) queues it.
    fn spare(&mut self) -> &mut [u8] {
        if self.buf.len() < SINK_BUF {
            // A new buffer, or a short one back from the thread: the rest
            // is zeroed once; full buffers come back as they were.
            self.buf.resize(SINK_BUF, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// Takes `n` more bytes of [`spare`](Self::spare) as data; a full
    /// buffer goes to the thread.
    async fn advance(&mut self, n: usize) -> Result<(), ()> {
        if self.filled + n > self.buf.len() {
            return Err(());
        }
        self.filled += n;
        if self.filled == SINK_BUF {
            self.send_buf().await?;
        }
        Ok(())
    }

    async fn send_buf(&mut self) -> Result<(), ()> {
        if self.filled == 0 {
            return Ok(());
        }
        let next = self.free.try_recv().unwrap_or_default();
        let mut full = std::mem::replace(&mut self.buf, next);
        full.truncate(self.filled);
        self.filled = 0;
        let tx = self.tx.as_ref().ok_or(())?;
        tx.send(SinkCmd::Data(full)).await.map_err(|_| ())
    }

    /// Writes everything queued and syncs it. `Err(None)`: the thread
    /// stopped (its error comes with [`close`](Self::close)).
    async fn sync(&mut self) -> Result<(), Option<io::Error>> {
        self.send_buf().await.map_err(|()| None)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(None)?;
        tx.send(SinkCmd::Sync(reply)).await.map_err(|_| None)?;
        match answer.await {
            Ok(r) => r.map_err(Some),
            Err(_) => Err(None),
        }
    }

    /// Writes what is queued (unless the thread stopped) and ends the
    /// thread: the file, the hash (with `hash`: of the whole file, else
    /// only if it happened to be complete) and the bytes really written.
    async fn close(mut self, hash: bool) -> Result<SinkDone, Error> {
        let _ = self.send_buf().await;
        if hash {
            if let Some(tx) = &self.tx {
                let _ = tx.send(SinkCmd::CatchUp).await;
            }
        }
        self.tx = None;
        let thread = self.thread.take().ok_or_else(closed)?;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| Error::Io(io::Error::other(e)))?
            .map_err(|_| Error::Io(io::Error::other("the file-writing thread panicked")))
    }

    /// [`close`](Self::close) without an async context (`Drop`): the
    /// thread writes what it holds and ends, then what is still queued
    /// here is written on the calling thread.
    fn close_blocking(mut self) -> Option<SinkDone> {
        use std::io::Write;
        self.tx = None;
        let mut done = self.thread.take()?.join().ok()?;
        if done.error.is_none() && self.filled > 0 {
            match done.file.write_all(&self.buf[..self.filled]) {
                Ok(()) => done.written += self.filled as u64,
                Err(e) => done.error = Some(e),
            }
        }
        Some(done)
    }
}

/// Most the writing thread hashes back from the file between two looks
/// at its queue.
const HASH_STEP: u64 = 1024 * 1024;

/// Hashes up to `most` bytes of the file from `*hashed`, reading them back
/// (they are in the page cache when they were just written).
fn catch_up(
    done: &mut SinkDone,
    hashed: &mut u64,
    scratch: &mut Vec<u8>,
    most: u64,
) -> io::Result<()> {
    use std::io::{Read, Seek};
    let Some(h) = done.hasher.as_mut() else {
        return Ok(());
    };
    let mut left = (done.written - *hashed).min(most);
    if left == 0 {
        return Ok(());
    }
    done.file.seek(io::SeekFrom::Start(*hashed))?;
    scratch.resize(HASH_STEP as usize, 0);
    while left > 0 {
        let want = left.min(HASH_STEP) as usize;
        match done.file.read(&mut scratch[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the partial file is shorter than what was written to it",
                ))
            }
            Ok(n) => {
                h.update(&scratch[..n]);
                *hashed += n as u64;
                left -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn closed() -> Error {
    Error::Application("the incoming file is already closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_keep_the_extension_and_stay_safe() {
        assert_eq!(numbered_name("report.pdf", 1).unwrap(), "report (1).pdf");
        assert_eq!(numbered_name("notes", 2).unwrap(), "notes (2)");
        assert_eq!(numbered_name("a.tar.gz", 3).unwrap(), "a.tar (3).gz");
        assert_eq!(numbered_name("_profile", 1).unwrap(), "_profile (1)");
        // Too long for a file name: no name rather than a cut one.
        assert!(numbered_name(&"x".repeat(252), 1).is_none());
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jet-ftfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn commit_only_with_matching_hash_and_never_overwrites() {
        let dir = tmpdir("commit");
        let mut f = IncomingFile::create(
            &dir,
            "a.bin",
            HashAlgo::Sha256,
            false,
            PartialInfo::default(),
        )
        .await
        .unwrap();
        f.write(b"abc").await.unwrap();
        assert!(
            !dir.join("a.bin").exists(),
            "final name must not exist before commit"
        );
        assert!(dir.join("a.bin.jet-part").exists());
        let wrong = FileHash::of(HashAlgo::Sha256, b"abd");
        assert!(f.commit(Some(&wrong)).await.is_err());
        assert!(!dir.join("a.bin").exists());
        assert!(
            !dir.join("a.bin.jet-part").exists(),
            "mismatching data is removed"
        );

        std::fs::write(dir.join("b.bin"), b"old").unwrap();
        assert!(IncomingFile::create(
            &dir,
            "b.bin",
            HashAlgo::Sha256,
            false,
            PartialInfo::default()
        )
        .await
        .is_err());
        assert_eq!(std::fs::read(dir.join("b.bin")).unwrap(), b"old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn path_traversal_stays_in_dir() {
        let dir = tmpdir("trav");
        let mut f = IncomingFile::create(
            &dir,
            "../../x/../passwd",
            HashAlgo::Sha256,
            false,
            PartialInfo::default(),
        )
        .await
        .unwrap();
        f.write(b"1").await.unwrap();
        let p = f.commit(None).await.unwrap();
        assert_eq!(p, dir.join("passwd"));
        assert!(
            IncomingFile::create(&dir, "..", HashAlgo::Sha256, false, PartialInfo::default())
                .await
                .is_err()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn info_of(data: &[u8], chunk_len: Option<u64>) -> PartialInfo {
        PartialInfo {
            size: Some(data.len() as u64),
            hash: Some(FileHash::of(HashAlgo::Sha256, data)),
            chunk_len,
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 13 % 251) as u8).collect()
    }

    /// An interrupted chunked transfer's leftovers: `written` received,
    /// the first `authenticated` of them kept with their record.
    async fn leave_partial(
        dir: &Path,
        name: &str,
        info: &PartialInfo,
        written: &[u8],
        authenticated: u64,
    ) {
        let mut f = IncomingFile::create(dir, name, None, false, info.clone())
            .await
            .unwrap();
        f.write(written).await.unwrap();
        f.set_authenticated(authenticated);
        f.abandon(Some(authenticated)).await.unwrap();
    }

    #[tokio::test]
    async fn abandon_keeps_authenticated_prefix_for_resume() {
        let dir = tmpdir("resume");
        let whole = b"0123456789";
        let info = info_of(whole, None);
        let mut f = IncomingFile::create(&dir, "r.bin", HashAlgo::Sha256, false, info.clone())
            .await
            .unwrap();
        f.write(whole).await.unwrap();
        f.abandon(Some(4)).await.unwrap();
        assert_eq!(std::fs::read(dir.join("r.bin.jet-part")).unwrap(), b"0123");
        assert_eq!(
            resumable_offset(&dir, "r.bin", Some(10), info.hash.as_ref()),
            4
        );
        // A fresh (non-resume) transfer refuses to clobber the partial file,
        // and says so without our directory (the text may reach the peer).
        let e = IncomingFile::create(&dir, "r.bin", HashAlgo::Sha256, false, info.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("r.bin.jet-part exists"), "{e}");
        assert!(!e.contains(&*dir.to_string_lossy()), "{e}");
        let mut f = IncomingFile::create(&dir, "r.bin", HashAlgo::Sha256, true, info.clone())
            .await
            .unwrap();
        assert_eq!(f.offset(), 4);
        f.write(b"456789").await.unwrap();
        let p = f
            .commit(Some(&FileHash::of(HashAlgo::Sha256, whole)))
            .await
            .unwrap();
        assert_eq!(std::fs::read(p).unwrap(), whole);
        assert!(!dir.join("r.bin.jet-part.state").exists(), "record removed");
        // Dropped mid-way (cancelled): only the authenticated prefix stays.
        let mut f = IncomingFile::create(&dir, "d.bin", HashAlgo::Sha256, false, info.clone())
            .await
            .unwrap();
        f.write(b"abcdef").await.unwrap();
        f.set_authenticated(2);
        drop(f);
        assert_eq!(std::fs::read(dir.join("d.bin.jet-part")).unwrap(), b"ab");
        assert_eq!(resumable_offset(&dir, "d.bin", None, info.hash.as_ref()), 2);
        let mut f = IncomingFile::create(&dir, "e.bin", HashAlgo::Sha256, false, info.clone())
            .await
            .unwrap();
        f.write(b"unauthenticated").await.unwrap();
        drop(f);
        assert!(!dir.join("e.bin.jet-part").exists());
        assert!(!dir.join("e.bin.jet-part.state").exists());
        // Abandon without keeping removes the partial file and its record.
        let f = IncomingFile::create(&dir, "s.bin", HashAlgo::Sha256, false, info)
            .await
            .unwrap();
        f.abandon(None).await.unwrap();
        assert!(!dir.join("s.bin.jet-part").exists());
        assert!(!dir.join("s.bin.jet-part.state").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A resumed file's hash covers the whole file although the prefix is
    /// hashed by the writing thread between and after the new writes (not
    /// before the first): reading back, then hashing new data as it comes
    /// once caught up, in order.
    #[tokio::test]
    async fn a_resumed_prefix_is_hashed_beside_the_new_data() {
        let dir = tmpdir("hash-behind");
        let bytes = data(9_000_000);
        let info = info_of(&bytes, Some(65536));
        let prefix = 6_029_312; // 92 chunks of 64 KiB
        leave_partial(&dir, "h.bin", &info, &bytes[..prefix + 1000], prefix as u64).await;
        // Three ways: the new data written at once (hashed back at the
        // end); in 37 pieces, each one written before the next (hashed
        // between them, or back); after the prefix was hashed (each piece
        // hashed as it is written, never twice).
        for (way, pieces, caught_up) in [(0, 1usize, false), (1, 37, false), (2, 37, true)] {
            // The same partial file each time: a copy of the prefix.
            let d = tmpdir(&format!("hash-behind-{way}"));
            for n in ["h.bin.jet-part", "h.bin.jet-part.state"] {
                std::fs::copy(dir.join(n), d.join(n)).unwrap();
            }
            let mut f = IncomingFile::create(&d, "h.bin", HashAlgo::Sha256, true, info.clone())
                .await
                .unwrap();
            assert_eq!(f.offset(), prefix as u64);
            if caught_up {
                f.hash_caught_up().await;
            }
            let rest = &bytes[prefix..];
            for piece in rest.chunks(rest.len().div_ceil(pieces)) {
                f.write(piece).await.unwrap();
                if pieces > 1 {
                    f.settle().await; // one write per piece
                }
            }
            let p = f.commit(info.hash.as_ref()).await.unwrap();
            assert!(std::fs::read(p).unwrap() == bytes, "way {way}");
            std::fs::remove_dir_all(&d).unwrap();
        }
        // Closed without the catch-up (an abandoned transfer): no hash is
        // made of a part of the file.
        let mut f = IncomingFile::create(&dir, "h.bin", HashAlgo::Sha256, true, info.clone())
            .await
            .unwrap();
        f.write(&bytes[prefix..prefix + 65_536]).await.unwrap();
        f.close_sink().await.unwrap();
        // Unless the thread happened to catch up meanwhile, there is no
        // hash; never one of a part of the file.
        match &f.hashed {
            Some(None) => {}
            Some(Some(h)) => {
                assert!(h.matches(&FileHash::of(HashAlgo::Sha256, &bytes[..prefix + 65_536])))
            }
            None => panic!("closed without a hash state"),
        }
        f.set_authenticated((prefix + 65_536) as u64);
        f.abandon(Some((prefix + 65_536) as u64)).await.unwrap();
        assert_eq!(
            resumable_offset(&dir, "h.bin", info.size, info.hash.as_ref()),
            (prefix + 65_536) as u64
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A commit cancelled at any point (the transfer's task dropped: the
    /// user's Ctrl-C, the peer's timeout) never leaves a cut final file:
    /// once linked, the file is the final file and `Drop` leaves it alone.
    #[tokio::test]
    async fn a_cancelled_commit_never_cuts_the_final_file() {
        let bytes = data(200_000);
        let info = info_of(&bytes, Some(65536));
        // Cancelled ever later; the last is left time to finish, so the
        // check below sees at least one final file.
        let delays = (0..60u64).map(|i| Duration::from_micros(i * 40));
        let mut seen = 0;
        for (i, late) in delays.chain([Duration::from_secs(30)]).enumerate() {
            let dir = tmpdir(&format!("cancel-commit-{i}"));
            let mut f = IncomingFile::create(&dir, "c.bin", None, false, info.clone())
                .await
                .unwrap();
            f.write(&bytes).await.unwrap();
            // As the receive loop leaves it: the last short chunk is
            // released but below a 64 KiB boundary for `keepable`.
            f.set_authenticated(bytes.len() as u64);
            let _ = tokio::time::timeout(late, f.commit(None)).await;
            // What the blocking pool still had in hand is done by now.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Ok(got) = std::fs::read(dir.join("c.bin")) {
                assert!(
                    got == bytes,
                    "run {i}: a cut final file ({} bytes)",
                    got.len()
                );
                seen += 1;
            }
            // A link still in the blocking pool on a loaded machine may
            // land after this; the directory is made anew next time.
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert!(seen > 0, "no commit got as far as the final file");
    }

    /// A partial file opened for a resume is used only if its name still
    /// names it once locked: one another transfer committed meanwhile (now
    /// under its final name) or replaced is left alone.
    #[cfg(unix)]
    #[test]
    fn a_partial_file_is_used_only_while_its_name_names_it() {
        let dir = tmpdir("still-named");
        let part = dir.join("n.bin.jet-part");
        std::fs::write(&part, b"abc").unwrap();
        let f = std::fs::File::open(&part).unwrap();
        assert_eq!(still_named(&f, &part, "n.bin.jet-part").unwrap(), 3);
        // Committed meanwhile: linked under the final name, unlinked.
        std::fs::hard_link(&part, dir.join("n.bin")).unwrap();
        std::fs::remove_file(&part).unwrap();
        let e = still_named(&f, &part, "n.bin.jet-part")
            .unwrap_err()
            .to_string();
        assert!(e.contains("changed while it was opened"), "{e}");
        // And a new partial file of that name is another file.
        std::fs::write(&part, b"abcd").unwrap();
        assert!(still_named(&f, &part, "n.bin.jet-part").is_err());
        assert_eq!(
            std::fs::read(dir.join("n.bin")).unwrap(),
            b"abc",
            "untouched"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Two transfers of one name: a resuming one cannot take over (cut,
    /// append to) the partial file another is still writing.
    #[tokio::test]
    async fn a_partial_file_in_use_is_not_taken_over() {
        let dir = tmpdir("locked");
        let bytes = data(300_000);
        let info = info_of(&bytes, Some(65536));
        let mut a = IncomingFile::create(&dir, "l.bin", None, false, info.clone())
            .await
            .unwrap();
        a.write(&bytes[..200_000]).await.unwrap();
        a.set_authenticated(196_608);
        let e = IncomingFile::create(&dir, "l.bin", None, true, info.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("being written by another transfer"), "{e}");
        assert!(!e.contains(&*dir.to_string_lossy()), "{e}");
        a.write(&bytes[200_000..]).await.unwrap();
        a.set_authenticated(300_000);
        let p = a.commit(None).await.unwrap();
        assert!(
            std::fs::read(p).unwrap() == bytes,
            "the first transfer's file is whole"
        );
        // Once it is closed, the name is free for the next.
        leave_partial(&dir, "m.bin", &info, &bytes[..70_000], 65_536).await;
        let c = IncomingFile::create(&dir, "m.bin", None, true, info)
            .await
            .unwrap();
        assert_eq!(c.offset(), 65_536, "an abandoned partial file resumes");
        c.abandon(None).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A resuming transfer of another file of the same name (another size)
    /// does not cut away the authenticated bytes a partial file holds for
    /// the first: that transfer may still be resumed. Bytes nothing vouches
    /// for are no such obstacle.
    #[tokio::test]
    async fn another_files_authenticated_part_is_not_cut_away() {
        let dir = tmpdir("other-part");
        let bytes = data(300_000);
        let info = info_of(&bytes, Some(65536));
        leave_partial(&dir, "o.bin", &info, &bytes[..140_000], 131_072).await;
        let other = info_of(&bytes[..299_999], Some(65536));
        let e = IncomingFile::create(&dir, "o.bin", None, true, other.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("131072 authenticated bytes of another file"),
            "{e}"
        );
        assert!(!e.contains(&*dir.to_string_lossy()), "{e}");
        assert_eq!(
            resumable_offset(&dir, "o.bin", info.size, info.hash.as_ref()),
            131_072,
            "the first file's transfer can still resume"
        );
        let a = IncomingFile::create(&dir, "o.bin", None, true, info)
            .await
            .unwrap();
        assert_eq!(a.offset(), 131_072);
        a.abandon(None).await.unwrap();
        // Nothing authenticated (a whole-stream transfer killed mid-way):
        // the other file's transfer takes the name.
        let mut c = IncomingFile::create(&dir, "p.bin", None, false, info_of(&bytes, None))
            .await
            .unwrap();
        c.write(&bytes[..100_000]).await.unwrap();
        c.settle().await;
        c.kill();
        assert_eq!(
            std::fs::metadata(dir.join("p.bin.jet-part")).unwrap().len(),
            100_000
        );
        let b = IncomingFile::create(&dir, "p.bin", None, true, other)
            .await
            .unwrap();
        assert_eq!(b.offset(), 0);
        b.abandon(None).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A crash (the process killed: no drop, no abandon) in a whole-stream
    /// transfer leaves decrypted, unauthenticated bytes; a resume starts from
    /// zero and cuts them away.
    #[tokio::test]
    async fn a_crashed_whole_stream_partial_is_never_resumed() {
        let dir = tmpdir("crash-whole");
        let bytes = data(300_000);
        let info = info_of(&bytes, None);
        let mut f = IncomingFile::create(&dir, "w.bin", HashAlgo::Sha256, false, info.clone())
            .await
            .unwrap();
        f.write(&bytes[..200_000]).await.unwrap();
        f.settle().await; // the bytes reached the disk, then:
        f.kill();
        let part = dir.join("w.bin.jet-part");
        assert_eq!(std::fs::metadata(&part).unwrap().len(), 200_000);
        assert_eq!(
            resumable_offset(&dir, "w.bin", info.size, info.hash.as_ref()),
            0
        );
        let mut f = IncomingFile::create(&dir, "w.bin", HashAlgo::Sha256, true, info.clone())
            .await
            .unwrap();
        assert_eq!(f.offset(), 0);
        assert_eq!(std::fs::metadata(&part).unwrap().len(), 0, "cut at once");
        f.write(&bytes).await.unwrap();
        let p = f.commit(info.hash.as_ref()).await.unwrap();
        assert_eq!(std::fs::read(p).unwrap(), bytes);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reading straight into the writer's buffer (`spare`/`advance`) while
    /// records are due at every step: every byte lands once, in order,
    /// and the record follows what was authenticated.
    #[tokio::test]
    async fn data_read_into_spare_survives_records_between_reads() {
        let dir = tmpdir("spare");
        let bytes = data(3 * SINK_BUF + 12_345);
        let info = info_of(&bytes, Some(65536));
        let mut f = IncomingFile::create(&dir, "s.bin", None, false, info)
            .await
            .unwrap();
        f.record_interval = Duration::ZERO;
        let mut at = 0;
        let mut before_last = 0;
        let mut step = 0;
        while at < bytes.len() {
            before_last = at;
            let spare = f.spare().unwrap();
            assert!(!spare.is_empty());
            // Uneven pieces, some crossing a buffer's end.
            let n = spare
                .len()
                .min(bytes.len() - at)
                .min([70_001, 1, 300_000][step % 3]);
            spare[..n].copy_from_slice(&bytes[at..at + n]);
            f.advance(n).await.unwrap();
            at += n;
            step += 1;
            f.set_authenticated(at as u64);
        }
        // The record (made after each piece was taken, for what was
        // authenticated before it) vouches for whole chunks up to there.
        let state = std::fs::read_to_string(dir.join("s.bin.jet-part.state")).unwrap();
        let recorded: u64 = state
            .lines()
            .find_map(|l| l.strip_prefix("authenticated "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(recorded, before_last as u64 / 65536 * 65536, "{state}");
        assert_eq!(f.finish().await.unwrap(), None, "created without a hash");
        let p = f.commit(None).await.unwrap();
        assert!(std::fs::read(p).unwrap() == bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A crash in a chunked transfer: the resume continues at the last chunk
    /// boundary the record holds, not at the partial file's length.
    #[tokio::test]
    async fn a_crashed_chunked_partial_resumes_from_the_recorded_boundary() {
        let dir = tmpdir("crash-chunked");
        let bytes = data(400_000);
        let info = info_of(&bytes, Some(65536));
        let mut f = IncomingFile::create(&dir, "c.bin", HashAlgo::Sha256, false, info.clone())
            .await
            .unwrap();
        f.record_interval = Duration::ZERO;
        let mut at = 0;
        for n in [65_536, 65_636, 10] {
            f.write(&bytes[at..at + n]).await.unwrap();
            at += n;
            f.set_authenticated(at as u64);
        }
        // Released but not yet recorded, and never authenticated: a crash.
        f.write(&bytes[at..at + 5000]).await.unwrap();
        f.settle().await; // on disk, then:
        f.kill();
        let part = dir.join("c.bin.jet-part");
        assert_eq!(std::fs::metadata(&part).unwrap().len(), 136_182);
        let off = resumable_offset(&dir, "c.bin", info.size, info.hash.as_ref());
        assert_eq!(off, 131_072);
        // Another file of the same name, or no hash to tell: from zero.
        let other = FileHash::of(HashAlgo::Sha256, b"other");
        assert_eq!(resumable_offset(&dir, "c.bin", info.size, Some(&other)), 0);
        assert_eq!(resumable_offset(&dir, "c.bin", info.size, None), 0);
        assert_eq!(
            resumable_offset(&dir, "c.bin", Some(1), info.hash.as_ref()),
            0
        );
        let mut f = IncomingFile::create(&dir, "c.bin", HashAlgo::Sha256, true, info.clone())
            .await
            .unwrap();
        assert_eq!(f.offset(), 131_072);
        assert_eq!(std::fs::metadata(&part).unwrap().len(), 131_072);
        f.write(&bytes[131_072..]).await.unwrap();
        let p = f.commit(info.hash.as_ref()).await.unwrap();
        assert_eq!(std::fs::read(p).unwrap(), bytes);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A record that is missing, unreadable, or claims more than the partial
    /// file holds: start from zero.
    #[tokio::test]
    async fn an_unknown_or_inconsistent_record_means_zero() {
        let dir = tmpdir("badstate");
        let bytes = data(200_000);
        let info = info_of(&bytes, Some(65536));
        let good = State {
            info: info.clone(),
            authenticated: 131_072,
        };
        assert_eq!(State::parse(&good.render()), Some(good.clone()));
        let part = dir.join("x.bin.jet-part");
        let state = dir.join("x.bin.jet-part.state");
        let h = info.hash.as_ref();
        std::fs::write(&part, &bytes[..150_000]).unwrap();
        assert_eq!(
            resumable_offset(&dir, "x.bin", info.size, h),
            0,
            "no record"
        );
        write_state(&state, &good).unwrap();
        assert_eq!(resumable_offset(&dir, "x.bin", info.size, h), 131_072);
        for bad in [
            String::new(),
            "garbage".into(),
            good.render().replace("131072", "13107x"),
            good.render()
                .replace("jet-part-state 1", "jet-part-state 2"),
            good.render() + "extra\n",
        ] {
            std::fs::write(&state, bad.as_bytes()).unwrap();
            assert_eq!(resumable_offset(&dir, "x.bin", info.size, h), 0, "{bad:?}");
        }
        // Claims more than the partial file holds.
        std::fs::write(&part, &bytes[..100_000]).unwrap();
        write_state(&state, &good).unwrap();
        assert_eq!(resumable_offset(&dir, "x.bin", info.size, h), 0);
        let f = IncomingFile::create(&dir, "x.bin", HashAlgo::Sha256, true, info.clone())
            .await
            .unwrap();
        assert_eq!(f.offset(), 0);
        assert_eq!(std::fs::metadata(&part).unwrap().len(), 0);
        drop(f);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
