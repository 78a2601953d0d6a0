//! XEP-0234 Jingle File Transfer as a Jingle [`Application`] (feature `tokio`).
//!
//! Four roles, two directions:
//!
//! | role | Jingle side | `senders` | data |
//! | --- | --- | --- | --- |
//! | [`FileOffer`] | initiator | initiator | sends a file (XEP-0391 listing 1) |
//! | [`FileReceiver`] | responder | initiator | receives offered files |
//! | [`FileRequest`] | initiator | responder | asks for a file by hash (listing 2, and resume: listing 3) |
//! | [`FileHost`] | responder | responder | serves requested files |
//!
//! Each implements the half it plays: [`FileOffer`] and [`FileRequest`] are
//! [`Initiator`]s, [`FileReceiver`] and [`FileHost`] [`Acceptor`]s. What
//! their `run` returns (bytes sent, or the [`ReceivedFile`]) comes back
//! from `Driver::initiate` or `Incoming::accept` once the session ended well.
//!
//! The stream handed to [`Application::run`] is already the JET layer: the
//! applications read and write plaintext. They never see the cipher, but they
//! know from [`AppContext::framing`] whether what they read is authenticated
//! before the end of the stream (chunked mode) or only at the end
//! (XEP-0391's whole-stream GCM). Received data goes through
//! [`IncomingFile`]: a partial file, linked to its final name only after the
//! stream authenticated and the hash matched.
//!
//! Resume (XEP-0391 §4.3): after an interruption the receiver keeps the
//! authenticated prefix (chunk boundaries in chunked mode; nothing in
//! whole-stream mode, whose bytes are unauthenticated until the tag) and asks
//! for the rest with `<range offset>` in a new session with a fresh secret,
//! either as a [`FileRequest`] or by answering a new offer with a range
//! ([`FileReceiver`] with `resume`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use minidom::Element;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cipher::Framing;
use crate::error::Error;
use crate::ft::{
    parse_checksum, received_element, sanitize_file_name, FileDesc, FileHash, HashAlgo, Hasher,
    Range, CHECKSUM_MAC_ALGO,
};
use crate::ft_fs::{
    free_name, partial_path, resumable_offset, resume_key, IncomingFile, PartialInfo,
};
use crate::jingle::{Reason, Senders};
use crate::ns;
use crate::session::{Acceptor, AppContext, Application, Decision, Initiator, Offer, SessionNotes};
use crate::transport::BoxedStream;

/// Called as data moves: `(bytes done in this session, bytes expected)`.
pub type ProgressFn = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// A file we can send: its path and description (with its SHA-256).
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Where it is.
    pub path: PathBuf,
    /// What we tell the peer.
    pub desc: FileDesc,
}

impl LocalFile {
    /// Reads `path` once to hash it (SHA-256) and describes it.
    pub async fn describe(path: &Path) -> Result<Self, Error> {
        let mut file = Self::stat(path).await?;
        file.hash().await?;
        Ok(file)
    }

    /// Describes `path` without reading it: no hash. A [`FileOffer`] of
    /// it announces a SHA-256 `<checksum/>` (`<hash-used/>`), computes it
    /// while it sends and sends it after the data.
    pub async fn stat(path: &Path) -> Result<Self, Error> {
        let meta = tokio::fs::metadata(path).await?;
        if !meta.is_file() {
            return Err(Error::Application(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Application(format!("{} has no usable name", path.display())))?;
        let mut desc = FileDesc::named(name, meta.len());
        desc.media_type = Some("application/octet-stream".into());
        desc.date = meta.modified().ok().map(xep0082);
        // An empty <range/> says we support ranged transfers (resume).
        desc.range = Some(Range::default());
        Ok(LocalFile {
            path: path.to_path_buf(),
            desc,
        })
    }

    /// Reads the file once to hash it (SHA-256) and adds the hash to its
    /// description, whose size becomes what was read.
    pub async fn hash(&mut self) -> Result<(), Error> {
        let f = File::open(&self.path).await?.into_std().await;
        // Large reads and the hash on the blocking pool, not in tokio's
        // File (a pool round trip per read).
        let (hasher, size) = tokio::task::spawn_blocking(move || {
            let mut f = f;
            let mut hasher = Hasher::new(HashAlgo::Sha256);
            let size = hasher.update_from(&mut f, 0, None)?;
            Ok::<_, std::io::Error>((hasher, size))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        self.desc.size = Some(size);
        self.desc.hashes.push(hasher.finish());
        Ok(())
    }
}

/// XEP-0082 date-time (UTC, seconds) of a system time.
fn xep0082(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (proleptic Gregorian), after H. Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The plaintext bytes a session described by `description` carries: the
/// announced size less the range offset (unknown without a size).
fn session_len(description: &Element) -> Option<u64> {
    let desc = FileDesc::from_description(description).ok()?;
    let offset = desc.range.map(|r| r.offset).unwrap_or(0);
    desc.size.map(|s| s.saturating_sub(offset))
}

/// Whether a description carries no SHA-256 or stronger hash and
/// announces none (`<hash-used/>`): its sender (a deployed client) may
/// send a checksum later, possibly over the ciphertext, which the driver
/// then hashes as it arrives. A sender that announces a strong hash (jet
/// hashing while it sends) promises a checksum of the file (XEP-0234).
fn lacks_strong_hash(description: &Element) -> bool {
    FileDesc::from_description(description).is_ok_and(|d| {
        !d.hashes
            .iter()
            .any(|h| matches!(h.algorithm(), Some(HashAlgo::Sha256 | HashAlgo::Sha512)))
            && !promises_strong_checksum(&d)
    })
}

/// Whether the offer announces a SHA-256 or stronger `<checksum/>` to come.
fn promises_strong_checksum(desc: &FileDesc) -> bool {
    desc.hash_used.iter().any(|a| {
        matches!(
            HashAlgo::from_name(a),
            Some(HashAlgo::Sha256 | HashAlgo::Sha512)
        )
    })
}

/// Whether a receiver hashes the file it receives from `offset` under
/// `framing`: to check a hash the offer carries or announces
/// (`<hash-used/>`), to check a resumed file against the sender's
/// checksum of the whole file, and without a cipher. A JET stream from
/// the start, from a sender that gives no hash, needs none: its cipher
/// authenticates every byte, and SHA-256 would cost more CPU than the
/// cipher and the socket together.
fn receiver_hashes(desc: &FileDesc, offset: u64, framing: Option<Framing>) -> bool {
    desc.best_hash().is_some() || !desc.hash_used.is_empty() || offset > 0 || framing.is_none()
}

/// The range the accepted description asks for (offset 0 when none).
fn accepted_range(description: &Element) -> Result<Range, Error> {
    Ok(FileDesc::from_description(description)?
        .range
        .unwrap_or_default())
}

/// Sends `length` bytes (or to the end) of `path` from `offset` into the
/// (already encrypting) `stream`, then shuts it down so the final tag goes out.
pub async fn send_file(
    path: &Path,
    range: Range,
    stream: &mut BoxedStream,
    progress: Option<&ProgressFn>,
) -> Result<u64, Error> {
    Ok(send_file_hashing(path, range, None, stream, progress)
        .await?
        .0)
}

/// [`send_file`], and with `whole` (the file's size when it was offered)
/// the SHA-256 of those `whole` bytes of the file, computed on the thread
/// that reads it: the range sent, and before and after it what the range
/// leaves out (read for the hash only).
async fn send_file_hashing(
    path: &Path,
    range: Range,
    whole: Option<u64>,
    stream: &mut BoxedStream,
    progress: Option<&ProgressFn>,
) -> Result<(u64, Option<FileHash>), Error> {
    let f = File::open(path).await?;
    let size = f.metadata().await?.len();
    if whole.is_some_and(|w| w != size) {
        return Err(Error::Application(format!(
            "{} changed size since it was offered",
            path.display()
        )));
    }
    if range.offset > size {
        return Err(Error::Application(format!(
            "the peer asked for offset {} of a {size}-byte file",
            range.offset
        )));
    }
    let total = range
        .length
        .unwrap_or(size - range.offset)
        .min(size - range.offset);
    let mut source = read_ahead(
        f.into_std().await,
        path,
        range.offset,
        total,
        whole.map(|_| size),
    )?;
    let mut done = 0u64;
    while done < total {
        let buf = match source.data.recv().await {
            Some(Ok(buf)) => buf,
            Some(Err(e)) => return Err(e),
            None => return Err(Error::Application("the file-reading thread stopped".into())),
        };
        stream.write_all(&buf).await.map_err(stream_error)?;
        done += buf.len() as u64;
        let _ = source.free.send(buf);
        if let Some(p) = progress {
            p(done, Some(total));
        }
    }
    // The final tag goes out first: the hash, computed beside the data
    // on its own thread, may take longer than the data, and the peer is
    // not left waiting for the end of the stream meanwhile.
    stream.shutdown().await.map_err(stream_error)?;
    let hash = match source.hash.take() {
        Some(rx) => Some(rx.await.map_err(|_| {
            Error::Application("the file-hashing thread stopped before the hash".into())
        })??),
        None => None,
    };
    Ok((done, hash))
}

/// Size of the buffers the file source reads.
const SOURCE_BUF: usize = 1024 * 1024;

/// How many buffers the file source reads ahead.
const SOURCE_DEPTH: usize = 2;

/// A file read ahead on its own thread.
struct ReadAhead {
    /// Full buffers, in file order; an error ends it.
    data: tokio::sync::mpsc::Receiver<Result<Vec<u8>, Error>>,
    /// Buffers given back for reuse.
    free: std::sync::mpsc::Sender<Vec<u8>>,
    /// The file's hash, when asked for.
    hash: Option<tokio::sync::oneshot::Receiver<Result<FileHash, Error>>>,
}

/// Reads `total` bytes of `f` from `offset` on a dedicated thread, in large
/// reads, up to [`SOURCE_DEPTH`] buffers ahead of the consumer, so the
/// socket task never waits for the disk nor for tokio's blocking pool. The
/// thread ends at the end, on an error (sent), or when the consumer goes.
/// With `hash_len`, a second thread hashes (SHA-256) the first `hash_len`
/// bytes of the file at `path`, from its start, beside the data: the first
/// byte goes out at once, not after the part the receiver already has was
/// hashed (which, for a large resumed file on a slow disk, would outlast
/// the receiver's stall timeout). A file replaced meanwhile gives a hash
/// that does not match, which the receiver refuses.
fn read_ahead(
    f: std::fs::File,
    path: &Path,
    offset: u64,
    total: u64,
    hash_len: Option<u64>,
) -> Result<ReadAhead, Error> {
    let (tx, data) = tokio::sync::mpsc::channel(SOURCE_DEPTH);
    let (free, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let hash = match hash_len {
        Some(len) => {
            let (hash_tx, hash_rx) = tokio::sync::oneshot::channel();
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("jet-file-hash".into())
                .spawn(move || {
                    let r = std::fs::File::open(&path)
                        .and_then(|f| {
                            let mut h = Hasher::new(HashAlgo::Sha256);
                            // Read from its start as opened: no seek. A
                            // send that ended stops it (nobody waits).
                            let mut f = WhileWanted {
                                inner: f,
                                wanted: &hash_tx,
                            };
                            let n = h.update_reader(&mut f, Some(len))?;
                            Ok((h, n))
                        })
                        .map_err(Error::Io)
                        .and_then(|(h, n)| match n < len {
                            true => Err(shrank()),
                            false => Ok(h.finish()),
                        });
                    let _ = hash_tx.send(r);
                })?;
            Some(hash_rx)
        }
        None => None,
    };
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("jet-file-source".into())
        .spawn(move || {
            use std::io::{Read, Seek};
            let mut f = f;
            if let Err(e) = f.seek(std::io::SeekFrom::Start(offset)) {
                let _ = tx.blocking_send(Err(Error::Io(e)));
                return;
            }
            let mut left = total;
            while left > 0 {
                let mut buf = free_rx.try_recv().unwrap_or_default();
                buf.resize(SOURCE_BUF, 0);
                let want = (left as usize).min(SOURCE_BUF);
                let mut got = 0;
                while got < want {
                    match f.read(&mut buf[got..want]) {
                        Ok(0) => {
                            let _ = tx.blocking_send(Err(Error::Application(format!(
                                "{shown} shrank while being sent"
                            ))));
                            return;
                        }
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.blocking_send(Err(Error::Io(e)));
                            return;
                        }
                    }
                }
                buf.truncate(got);
                left -= got as u64;
                if tx.blocking_send(Ok(buf)).is_err() {
                    return;
                }
            }
        })?;
    Ok(ReadAhead { data, free, hash })
}

/// A reader that fails once nobody waits for what is computed from it
/// (the receiving end of `wanted` is gone).
struct WhileWanted<'a, R, T> {
    inner: R,
    wanted: &'a tokio::sync::oneshot::Sender<T>,
}

impl<R: std::io::Read, T> std::io::Read for WhileWanted<'_, R, T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.wanted.is_closed() {
            return Err(std::io::Error::other("the send ended"));
        }
        self.inner.read(buf)
    }
}

/// The file being sent ended before the length it had when offered.
fn shrank() -> Error {
    Error::Application("the file shrank while being sent".into())
}

/// A write or read error of the JET stream: cipher failures come wrapped in
/// `io::Error` by the adapters and stay cipher errors here; the rest is the
/// transport's (`failed-transport`), unlike a local file's `Error::Io`.
fn stream_error(e: std::io::Error) -> Error {
    match crate::layer::cipher_error_of(&e) {
        Some(c) => Error::Cipher(c.clone()),
        None => Error::Transport(crate::error::TransportError::Io(e)),
    }
}

/// What a receiver ended up with.
#[derive(Debug, Clone)]
pub struct ReceivedFile {
    /// The final path.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// The file's hash (ours, matching the peer's when it gave one);
    /// `None` when nothing asked for one: a JET stream received from its
    /// start, whose cipher authenticated every byte, from a sender that
    /// gave no hash.
    pub hash: Option<FileHash>,
    /// Whether the peer gave a hash we could check.
    pub hash_checked: bool,
    /// The offset this session started at (resume).
    pub resumed_from: u64,
    /// Algorithms of sender checksums that could not be checked (jet does
    /// not compute them): said, not silently skipped.
    pub unchecked: Vec<String>,
}

/// Receives `desc` into `dir` from `stream`, starting at `offset` (an
/// existing partial file of exactly that length when `offset > 0`).
pub async fn receive_file(
    dir: &Path,
    desc: &FileDesc,
    offset: u64,
    framing: Option<Framing>,
    stream: &mut BoxedStream,
    progress: Option<&ProgressFn>,
) -> Result<ReceivedFile, Error> {
    receive_file_within(
        dir,
        desc,
        offset,
        offset > 0,
        framing,
        stream,
        progress,
        None,
        None,
        None,
    )
    .await
}

/// [`receive_file`], refusing to grow the file past `limit` bytes (which
/// matters when the peer announced no size). With `resume`, an existing
/// partial file is taken over: continued at `offset` when its record
/// vouches for that much, else started again from zero.
#[allow(clippy::too_many_arguments)]
async fn receive_file_within(
    dir: &Path,
    desc: &FileDesc,
    offset: u64,
    resume: bool,
    framing: Option<Framing>,
    stream: &mut BoxedStream,
    progress: Option<&ProgressFn>,
    limit: Option<u64>,
    session: Option<&AppContext>,
    rename_base: Option<&str>,
) -> Result<ReceivedFile, Error> {
    let name = desc.name.as_deref().unwrap_or("received.bin");
    let expected = desc.best_hash().cloned();
    let algo = receiver_hashes(desc, offset, framing).then(|| {
        expected
            .as_ref()
            .and_then(FileHash::algorithm)
            .unwrap_or(HashAlgo::Sha256)
    });
    let info = PartialInfo::of(desc, framing);
    let mut file = IncomingFile::create(dir, name, algo, resume || offset > 0, info).await?;
    if let Some(base) = rename_base {
        file.rename_if_taken(base);
    }
    if file.offset() != offset {
        let got = file.offset();
        file.abandon(Some(got)).await?;
        return Err(Error::Application(format!(
            "partial file has {got} bytes but the transfer resumes at {offset}"
        )));
    }
    let total = desc.size.map(|s| s.saturating_sub(offset));
    // Chunked mode releases only authenticated chunks; whole-stream mode
    // authenticates nothing before the end.
    let reads_authenticated = matches!(framing, Some(Framing::Chunked { .. }));
    let mut done = 0u64;
    let result: Result<Option<FileHash>, Error> = async {
        loop {
            // A cut is told from tampering by the JET layer, which knows
            // the expected wire length (`Application::expected_len`).
            // Read straight into the writing thread's buffer: no copy.
            let n = stream.read(file.spare()?).await.map_err(|e| {
                if crate::layer::appended_of(&e) {
                    Error::Application(format!(
                        "the peer sent more than the announced {} bytes",
                        desc.size.unwrap_or_default()
                    ))
                } else {
                    stream_error(e)
                }
            })?;
            if n == 0 {
                break;
            }
            if let Some(size) = desc.size {
                if offset + done + n as u64 > size {
                    return Err(Error::Application(format!(
                        "the peer sent more than the announced {size} bytes"
                    )));
                }
            }
            if let Some(max) = limit {
                if offset + done + n as u64 > max {
                    return Err(Error::Application(format!(
                        "the peer sent more than the limit of {max} bytes"
                    )));
                }
            }
            file.advance(n).await?;
            done += n as u64;
            if reads_authenticated {
                file.set_authenticated(offset + done);
            }
            if let Some(p) = progress {
                p(done, total);
            }
        }
        if let Some(size) = desc.size {
            if offset + done != size {
                return Err(Error::Application(format!(
                    "the transfer ended after {} of {size} bytes",
                    offset + done
                )));
            }
        }
        // The last writes land (a write error shows here at the latest).
        file.finish().await
    }
    .await;
    let hash = match result {
        Ok(hash) => hash,
        Err(e) => {
            let keep = if reads_authenticated {
                offset + done
            } else {
                offset
            };
            file.abandon(Some(keep)).await?;
            return Err(e);
        }
    };
    // An offered hash has a known algorithm (`best_hash`), the one the file
    // was hashed with and compared in `commit` below.
    let mut hash_checked = expected.is_some();
    // Resumed on the offer's date and size alone: only the sender's
    // checksum of the whole file says the earlier part belongs to it.
    let resumed_by_date = offset > 0 && expected.is_none();
    let mut unchecked = Vec::new();
    if let Some(session) = session {
        let notes = &*session.notes;
        // XEP-0234 allows the hash in session-info after the data. The
        // sender announced one with <hash-used/>, or this session resumed
        // a file named by its date (a jet sender then always sends the
        // checksum of the whole file, computed beside the data, which may
        // end first): wait for it.
        if !hash_checked && (!desc.hash_used.is_empty() || resumed_by_date) {
            let size = resumed_by_date.then_some(offset + done);
            let until = tokio::time::Instant::now() + checksum_wait(size);
            loop {
                let added = notes.info_added();
                let mut added = std::pin::pin!(added);
                added.as_mut().enable();
                if !checksums(notes).is_empty() {
                    break;
                }
                if tokio::time::timeout_at(until, added).await.is_err() {
                    break;
                }
            }
        }
        match check_checksums(
            &checksums(notes),
            hash.as_ref(),
            session,
            offset > 0,
            &mut unchecked,
        ) {
            Ok(verified) => hash_checked |= verified,
            Err(e) => {
                // Which part is wrong is unknown (a resumed prefix too):
                // nothing of it is trusted again.
                file.abandon(None).await?;
                return Err(e);
            }
        }
    }
    if resumed_by_date && !hash_checked {
        // Resumed on the offer's date and size alone: only the whole
        // file's checksum says the earlier part belongs to this file. The
        // bytes stay (all authenticated) for another try.
        file.abandon(Some(offset + done)).await?;
        return Err(Error::Application(
            "resumed without a hash in the offer, and the sender's checksum of the whole file \
             did not come: the file was not kept under its name"
                .into(),
        ));
    }
    let path = file.commit(expected.as_ref()).await?;
    Ok(ReceivedFile {
        path,
        size: offset + done,
        hash,
        hash_checked,
        resumed_from: offset,
        unchecked,
    })
}

/// How long a receiver waits for a `<checksum/>` the sender announced
/// with `<hash-used/>` but had not sent by the end of the data.
const CHECKSUM_WAIT: Duration = Duration::from_secs(2);

/// Slowest disk a resuming jet sender is expected to hash from (bytes/s).
const SLOW_HASH_RATE: u64 = 50_000_000;

/// How long a receiver waits for the checksum after the data: for a file
/// resumed by its date (`resumed_size`: the whole file), the jet sender
/// hashes it from its start beside the data and may need longer than the
/// data took: as long as reading the whole file at [`SLOW_HASH_RATE`].
fn checksum_wait(resumed_size: Option<u64>) -> Duration {
    CHECKSUM_WAIT + slow_hash_time(resumed_size)
}

/// How long hashing `size` bytes at [`SLOW_HASH_RATE`] takes.
fn slow_hash_time(size: Option<u64>) -> Duration {
    Duration::from_secs(size.unwrap_or(0) / SLOW_HASH_RATE)
}

/// The hashes of every `<checksum/>` received in `session-info` so far.
fn checksums(notes: &SessionNotes) -> Vec<FileHash> {
    notes
        .infos()
        .iter()
        .filter(|el| el.is("checksum", ns::JINGLE_FT))
        .filter_map(|el| parse_checksum(el).ok())
        .flatten()
        .collect()
}

/// Compares the sender's checksums with the file we received (`ours`) or,
/// for senders that hash what they wrote (Conversations), with the
/// ciphertext. Not with the ciphertext of a `resumed` session: it covers
/// only the bytes after the offset, so it cannot say that the part we
/// already had belongs to this file (and a server that relays the
/// ciphertext can compute it). `Ok(true)`: a SHA-256 or stronger hash
/// matched one of them;
/// `Ok(false)`: nothing comparable (none given, unknown algorithms, SHA-1
/// alone, which is never taken as proof); `Err`: a hash matched neither,
/// and the file must not be committed.
fn check_checksums(
    given: &[FileHash],
    ours: Option<&FileHash>,
    session: &AppContext,
    resumed: bool,
    unchecked: &mut Vec<String>,
) -> Result<bool, Error> {
    let key = session.checksum_key.as_ref();
    let mut verified = false;
    for h in given {
        if h.algo == CHECKSUM_MAC_ALGO {
            // A jet sender's keyed checksum of the file (a resume).
            let (Some(key), Some(ours)) = (key, ours) else {
                continue;
            };
            if !key.verify(h, ours) {
                return Err(Error::Application(
                    "the sender's keyed checksum does not match the received file; the file \
                     was not kept"
                        .into(),
                ));
            }
            verified = true;
            continue;
        }
        let Some(algo) = h.algorithm() else {
            unchecked.push(h.algo.clone());
            continue;
        };
        let mut candidates = Vec::new();
        if let Some(ours) = ours.filter(|o| o.algorithm() == Some(algo)) {
            candidates.push(ours.clone());
        }
        if !resumed {
            candidates.extend(session.notes.wire_hash(algo));
        }
        if candidates.is_empty() {
            continue;
        }
        if candidates.iter().any(|c| c.matches(h)) {
            verified |= algo != HashAlgo::Sha1;
        } else {
            return Err(Error::Application(format!(
                "the sender's {} checksum matches neither the received file nor the bytes \
                 on the wire; the file was not kept",
                h.algo
            )));
        }
    }
    Ok(verified)
}

/// Initiator sending one file (senders = initiator).
///
/// A file described with its hash ([`LocalFile::describe`]) is offered
/// with it (for peers that want one, such as Libervia). One described
/// without ([`LocalFile::stat`]) is offered with its size and date only:
/// the JET cipher authenticates every byte, and a plaintext hash in the
/// offer would travel through the server in the clear (a fingerprint of
/// the file) and cost more CPU than the cipher. When the receiver resumes
/// such a file (`<range offset>` above 0), the file's SHA-256 is computed
/// while it is sent, on the thread that reads it, and goes to the
/// receiver as a `<checksum/>` in `session-info` after the data
/// (XEP-0234 §8): the proof that the part it already had belongs to the
/// same file.
pub struct FileOffer {
    file: LocalFile,
    progress: Option<ProgressFn>,
    /// The hash computed while sending (resumed offers without one), for
    /// the checksum sent after the data (`on_sent`) and [`FileOffer::hash`].
    computed: Mutex<Option<FileHash>>,
}

impl FileOffer {
    /// Offers `file`.
    pub fn new(file: LocalFile, progress: Option<ProgressFn>) -> Self {
        FileOffer {
            file,
            progress,
            computed: Mutex::new(None),
        }
    }

    /// The file's SHA-256 (or the offered hash): from the description, or
    /// computed while sending once a resumed session sent the data; `None`
    /// when no one needed it.
    pub fn hash(&self) -> Option<FileHash> {
        self.file
            .desc
            .best_hash()
            .cloned()
            .or_else(|| self.computed.lock().unwrap().clone())
    }

    /// Whether the offer has no hash (computed while sending a resume).
    fn hashes_while_sending(&self) -> bool {
        self.file.desc.best_hash().is_none()
    }
}

#[async_trait]
impl Application for FileOffer {
    /// Bytes sent in the session.
    type Output = u64;

    async fn run(&self, ctx: AppContext, mut stream: BoxedStream) -> Result<u64, Error> {
        let range = accepted_range(&ctx.description)?;
        // Only this session's hash may follow its data (an offer used again
        // from offset 0 sends none).
        *self.computed.lock().unwrap() = None;
        let whole = if self.hashes_while_sending() && range.offset > 0 {
            // The size offered: the checksum covers exactly that.
            Some(self.file.desc.size.unwrap_or(0))
        } else {
            None
        };
        let (n, hash) = send_file_hashing(
            &self.file.path,
            range,
            whole,
            &mut stream,
            self.progress.as_ref(),
        )
        .await?;
        *self.computed.lock().unwrap() = hash;
        Ok(n)
    }

    fn verdict_grace(&self, ctx: &AppContext) -> Duration {
        // A resumed file (with or without a hash in the offer): the
        // receiver hashes what it had too, possibly at the end
        // (`IncomingFile`), as long as a slow disk takes.
        match accepted_range(&ctx.description) {
            Ok(r) if r.offset > 0 => slow_hash_time(self.file.desc.size),
            _ => Duration::ZERO,
        }
    }

    fn on_sent(&self, ctx: &AppContext) -> Option<Element> {
        // Set by `run` only when this session needed it (a resume).
        let hash = self.computed.lock().unwrap().clone()?;
        // Over JET, keyed: the plain SHA-256 would be a fingerprint of
        // the file for the server (which can also fake a resume to get it).
        let hash = match &ctx.checksum_key {
            Some(key) => key.seal(&hash)?,
            None => hash,
        };
        Some(crate::ft::checksum_element(
            "initiator",
            &ctx.content,
            &hash,
        ))
    }
}

impl Initiator for FileOffer {
    fn offer(&self) -> Result<Offer, Error> {
        Ok(Offer {
            description: self.file.desc.to_description(),
            senders: Senders::Initiator,
        })
    }
}

/// What a [`FileReceiver`] accepts.
#[derive(Debug, Clone)]
pub struct ReceivePolicy {
    /// Largest file accepted (bytes).
    pub max_size: u64,
    /// Continue a partial file from an earlier interrupted transfer by
    /// answering with `<range offset>`.
    pub resume: bool,
}

impl Default for ReceivePolicy {
    fn default() -> Self {
        ReceivePolicy {
            max_size: 64 * 1024 * 1024 * 1024,
            resume: true,
        }
    }
}

/// Responder receiving offered files into a directory (senders = initiator).
pub struct FileReceiver {
    dir: PathBuf,
    policy: ReceivePolicy,
    progress: Option<ProgressFn>,
    /// Take a free name when the offered one is taken ([`Self::renaming`]).
    rename: bool,
    /// The local name chosen for an offered (sanitized) name, when it was
    /// taken: from `decide` to `run`.
    renamed: Mutex<std::collections::HashMap<String, String>>,
}

impl FileReceiver {
    /// Receives into `dir`.
    pub fn new(dir: PathBuf, policy: ReceivePolicy, progress: Option<ProgressFn>) -> Self {
        FileReceiver {
            dir,
            policy,
            progress,
            rename: false,
            renamed: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// With `on`, an offer whose name is taken in the directory (a file,
    /// or a partial file that is not resumed) is received under a free
    /// name instead of being declined: `report (1).pdf`, `report (2).pdf`,
    /// ... ([`crate::ft_fs::free_name`]); a name taken while the data
    /// comes in gives way to the next one at the commit. Never overwrites.
    pub fn renaming(mut self, on: bool) -> Self {
        self.rename = on;
        self
    }

    /// The offer's description and the name to save it under.
    fn check(
        &self,
        description: &Element,
        senders: Senders,
    ) -> Result<(FileDesc, String), (Reason, String)> {
        if senders != Senders::Initiator {
            return Err((
                Reason::UnsupportedApplications,
                "only file offers are accepted here, not requests".into(),
            ));
        }
        let desc = FileDesc::from_description(description)
            .map_err(|e| (Reason::FailedApplication, e.to_string()))?;
        let name = desc.name.as_deref().ok_or((
            Reason::FailedApplication,
            "the offer has no file name".to_string(),
        ))?;
        let safe =
            sanitize_file_name(name).map_err(|e| (Reason::FailedApplication, e.to_string()))?;
        if let Some(size) = desc.size {
            if size > self.policy.max_size {
                return Err((
                    Reason::Decline,
                    format!(
                        "file of {size} bytes is larger than the limit of {} bytes",
                        self.policy.max_size
                    ),
                ));
            }
        }
        let taken = std::fs::symlink_metadata(self.dir.join(&safe)).is_ok();
        if !self.rename {
            if taken {
                // Said to the sender: the name only, never our directory.
                return Err((Reason::Decline, name_taken_text(&safe)));
            }
            return Ok((desc, safe));
        }
        // A partial file under the name is in the way too, unless it is
        // resumed (by the key its record was written with).
        let key = resume_key(&desc);
        let in_the_way = std::fs::symlink_metadata(partial_path(&self.dir, &safe)).is_ok()
            && !(self.policy.resume
                && resumable_offset(&self.dir, &safe, desc.size, key.as_ref()) > 0);
        if !taken && !in_the_way {
            return Ok((desc, safe));
        }
        match self.free_name_for(&desc, &safe) {
            Some(local) => Ok((desc, local)),
            None => Err((
                Reason::Decline,
                format!("{safe} already exists there, and no free name was found"),
            )),
        }
    }
}

impl FileReceiver {
    /// The next free numbered variant of `safe` for `desc` in our directory
    /// (one whose partial file this offer resumes counts as free).
    fn free_name_for(&self, desc: &FileDesc, safe: &str) -> Option<String> {
        let key = resume_key(desc);
        free_name(&self.dir, safe, desc.size, key.as_ref(), self.policy.resume)
    }

    /// Where files are saved.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// When the offered file's (sanitized) name is taken in our directory:
    /// that name, and the one a [`renaming`](Self::renaming) receiver of
    /// the same directory and policy saves it under (`None`: none free).
    /// What to ask a user before accepting.
    pub fn name_taken(&self, description: &Element) -> Option<(String, Option<String>)> {
        let desc = FileDesc::from_description(description).ok()?;
        let safe = sanitize_file_name(desc.name.as_deref()?).ok()?;
        std::fs::symlink_metadata(self.dir.join(&safe)).ok()?;
        let free = self.free_name_for(&desc, &safe);
        Some((safe, free))
    }
}

/// The text of a decline because the offered name `safe` is taken (said to
/// the sender: the name only, never our directory).
pub fn name_taken_text(safe: &str) -> String {
    format!("{safe} {NAME_TAKEN}")
}

/// How a decline's text for a taken name ends ([`name_taken_text`]).
pub const NAME_TAKEN: &str = "already exists there";

impl Acceptor for FileReceiver {
    fn namespace(&self) -> &'static str {
        ns::JINGLE_FT
    }

    fn decide(&self, description: &Element, senders: Senders) -> Decision {
        match self.check(description, senders) {
            Err((reason, text)) => Decision::Reject(reason, Some(text)),
            Ok((mut desc, local)) => {
                let safe = sanitize_file_name(desc.name.as_deref().unwrap_or_default())
                    .unwrap_or_default();
                if local != safe {
                    self.renamed.lock().unwrap().insert(safe, local.clone());
                }
                // Only what the partial file's record says is authenticated,
                // for this very file (see `ft_fs`).
                let key = resume_key(&desc);
                let have = resumable_offset(&self.dir, &local, desc.size, key.as_ref());
                let ranged = desc.range.is_some();
                if self.policy.resume && ranged && have > 0 && desc.size.is_some_and(|s| have <= s)
                {
                    desc.range = Some(Range {
                        offset: have,
                        length: None,
                    });
                }
                Decision::Accept(desc.to_description())
            }
        }
    }
}

#[async_trait]
impl Application for FileReceiver {
    /// The file received in the session.
    type Output = ReceivedFile;

    async fn run(&self, ctx: AppContext, mut stream: BoxedStream) -> Result<ReceivedFile, Error> {
        let mut desc = FileDesc::from_description(&ctx.description)?;
        let offset = desc.range.map(|r| r.offset).unwrap_or(0);
        let safe = sanitize_file_name(desc.name.as_deref().unwrap_or_default())?;
        if let Some(local) = self.renamed.lock().unwrap().remove(&safe) {
            desc.name = Some(local);
        }
        if self.rename && offset == 0 {
            // Taken since `decide` (a file created meanwhile): another.
            let local = desc.name.clone().unwrap_or_default();
            if std::fs::symlink_metadata(self.dir.join(&local)).is_ok() {
                let free = free_name(&self.dir, &safe, desc.size, desc.best_hash(), false)
                    .ok_or_else(|| Error::Application(name_taken_text(&safe)))?;
                desc.name = Some(free);
            }
        }
        // The size check in `decide` needs a size; an offer without one is
        // bounded here, as the data arrives.
        receive_file_within(
            &self.dir,
            &desc,
            offset,
            self.policy.resume,
            ctx.framing,
            &mut stream,
            self.progress.as_ref(),
            Some(self.policy.max_size),
            Some(&ctx),
            self.rename.then_some(safe.as_str()),
        )
        .await
    }

    fn expected_len(&self, ctx: &AppContext) -> Option<u64> {
        session_len(&ctx.description)
    }

    fn wants_wire_hashes(&self, ctx: &AppContext) -> bool {
        // Only from offset 0: a resumed session's ciphertext proves
        // nothing about the whole file (`check_checksums`).
        lacks_strong_hash(&ctx.description)
            && FileDesc::from_description(&ctx.description).is_ok_and(|d| {
                d.range.is_none_or(|r| r.offset == 0) && receiver_hashes(&d, 0, ctx.framing)
            })
    }

    fn on_received(&self, ctx: &AppContext) -> Option<Element> {
        // Our sessions have one content, created by the initiator.
        Some(received_element("initiator", &ctx.content))
    }
}

/// Initiator asking a peer for a file by hash (senders = responder); with an
/// existing partial file, asks for the rest (`<range offset>`).
pub struct FileRequest {
    dir: PathBuf,
    desc: FileDesc,
    progress: Option<ProgressFn>,
    max_size: u64,
}

impl FileRequest {
    /// Requests the file with `hash` (and optionally `name`) into `dir`,
    /// resuming from an existing partial file of that name.
    pub fn new(
        dir: PathBuf,
        hash: FileHash,
        name: Option<String>,
        progress: Option<ProgressFn>,
    ) -> Result<Self, Error> {
        let mut desc = FileDesc {
            hashes: vec![hash],
            ..Default::default()
        };
        if let Some(n) = name {
            let safe = sanitize_file_name(&n)?;
            let have = resumable_offset(&dir, &safe, None, desc.hashes.first());
            if have > 0 {
                desc.range = Some(Range {
                    offset: have,
                    length: None,
                });
            }
            desc.name = Some(safe);
        }
        Ok(FileRequest {
            dir,
            desc,
            progress,
            max_size: ReceivePolicy::default().max_size,
        })
    }

    /// Refuses a file larger than `limit` bytes (default: the
    /// [`ReceivePolicy`] default, 64 GiB): when the host's answer announces
    /// a larger size, before any data, and while the data arrives when it
    /// announces none.
    pub fn with_max_size(mut self, limit: u64) -> Self {
        self.max_size = limit;
        self
    }

    /// The range offset this request asks for.
    pub fn offset(&self) -> u64 {
        self.desc.range.map(|r| r.offset).unwrap_or(0)
    }
}

impl Initiator for FileRequest {
    fn offer(&self) -> Result<Offer, Error> {
        Ok(Offer {
            description: self.desc.to_description(),
            senders: Senders::Responder,
        })
    }
}

#[async_trait]
impl Application for FileRequest {
    /// The file received in the session.
    type Output = ReceivedFile;

    async fn run(&self, ctx: AppContext, mut stream: BoxedStream) -> Result<ReceivedFile, Error> {
        // The host answers with the full description; the hash we asked for
        // must be among its hashes, and it must honour our range.
        let answer = FileDesc::from_description(&ctx.description)?;
        let asked = &self.desc.hashes[0];
        if !answer.hashes.iter().any(|h| h.matches(asked)) {
            return Err(Error::Application(
                "the peer answered a request for one file with another".into(),
            ));
        }
        let offset = self.offset();
        if answer.range.map(|r| r.offset).unwrap_or(0) != offset {
            return Err(Error::Application(
                "the peer did not honour the requested range".into(),
            ));
        }
        if let Some(size) = answer.size {
            if size > self.max_size {
                return Err(Error::Refused {
                    reason: "decline".into(),
                    text: Some(format!(
                        "file of {size} bytes is larger than the limit of {} bytes",
                        self.max_size
                    )),
                });
            }
        }
        let mut desc = answer.clone();
        if desc.name.is_none() {
            desc.name = self.desc.name.clone();
        }
        // Verify against the hash we asked for, not only what the host says.
        desc.hashes = vec![asked.clone()];
        receive_file_within(
            &self.dir,
            &desc,
            offset,
            self.desc.name.is_some(),
            ctx.framing,
            &mut stream,
            self.progress.as_ref(),
            Some(self.max_size),
            Some(&ctx),
            None,
        )
        .await
    }

    fn expected_len(&self, ctx: &AppContext) -> Option<u64> {
        session_len(&ctx.description)
    }

    fn wants_wire_hashes(&self, ctx: &AppContext) -> bool {
        lacks_strong_hash(&ctx.description)
            && accepted_range(&ctx.description).is_ok_and(|r| r.offset == 0)
    }

    fn on_received(&self, ctx: &AppContext) -> Option<Element> {
        // Our sessions have one content, created by the initiator.
        Some(received_element("initiator", &ctx.content))
    }
}

/// Responder serving requested files by hash (senders = responder).
pub struct FileHost {
    files: Vec<LocalFile>,
    progress: Option<ProgressFn>,
}

impl FileHost {
    /// Serves `files`.
    pub fn new(files: Vec<LocalFile>, progress: Option<ProgressFn>) -> Self {
        FileHost { files, progress }
    }

    fn find(&self, wanted: &FileDesc) -> Option<&LocalFile> {
        self.files.iter().find(|f| {
            wanted
                .hashes
                .iter()
                .any(|w| f.desc.hashes.iter().any(|h| h.matches(w)))
        })
    }
}

impl Acceptor for FileHost {
    fn namespace(&self) -> &'static str {
        ns::JINGLE_FT
    }

    fn decide(&self, description: &Element, senders: Senders) -> Decision {
        if senders != Senders::Responder {
            return Decision::Reject(
                Reason::UnsupportedApplications,
                Some("this endpoint only serves file requests".into()),
            );
        }
        let wanted = match FileDesc::from_description(description) {
            Ok(d) => d,
            Err(e) => return Decision::Reject(Reason::FailedApplication, Some(e.to_string())),
        };
        let Some(file) = self.find(&wanted) else {
            return Decision::Reject(Reason::Decline, Some("no such file here".into()));
        };
        let mut desc = file.desc.clone();
        if let Some(r) = wanted.range {
            if desc.size.is_some_and(|s| r.offset > s) {
                return Decision::Reject(
                    Reason::FailedApplication,
                    Some("requested range starts past the end of the file".into()),
                );
            }
            desc.range = Some(r);
        }
        Decision::Accept(desc.to_description())
    }
}

#[async_trait]
impl Application for FileHost {
    /// Bytes sent in the session.
    type Output = u64;

    async fn run(&self, ctx: AppContext, mut stream: BoxedStream) -> Result<u64, Error> {
        let wanted = FileDesc::from_description(&ctx.description)?;
        let file = self
            .find(&wanted)
            .ok_or_else(|| Error::Application("the requested file is gone".into()))?;
        send_file(
            &file.path,
            wanted.range.unwrap_or_default(),
            &mut stream,
            self.progress.as_ref(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CipherError;
    use crate::transport::Role;
    use jid::FullJid;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jet-ftapp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn ctx(role: Role, description: Element, framing: Option<Framing>) -> AppContext {
        AppContext {
            role,
            peer: "peer@example.org/x".parse::<FullJid>().unwrap(),
            sid: "s1".into(),
            content: "c".into(),
            description,
            we_send: role == Role::Initiator,
            we_receive: role == Role::Responder,
            framing,
            notes: Default::default(),
            // Both ends of a JET session derive the same key.
            checksum_key: framing.map(|_| {
                let ts = crate::TransportSecret::new(vec![9; 32], vec![1; 12]).unwrap();
                crate::ft::ChecksumKey::derive(&ts)
            }),
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A stream that gives `bytes`, then ends (a cut transfer when they are
    /// fewer than announced).
    async fn cut_stream(bytes: &[u8]) -> BoxedStream {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        a.write_all(bytes).await.unwrap();
        drop(a);
        Box::new(b)
    }

    fn accept(d: Decision) -> Element {
        match d {
            Decision::Accept(e) => e,
            Decision::Reject(r, t) => panic!("rejected: {r:?} {t:?}"),
        }
    }

    /// A deployed sender (Conversations) offers no hash and sends a
    /// checksum of the bytes it wrote after the data: a checksum matching
    /// the wire bytes (or the file) verifies it; one matching neither
    /// refuses the file; SHA-1 alone is never proof; an unknown algorithm
    /// is reported, not skipped.
    #[tokio::test]
    async fn a_checksum_after_the_data_is_checked_against_file_or_wire() {
        let plain = data(70_000);
        let wire: Vec<u8> = plain.iter().map(|b| b ^ 0x5a).collect(); // stands for ciphertext
        let desc = FileDesc::named("c.bin", plain.len() as u64);
        let run = |name: &'static str, sums: Vec<FileHash>| {
            let (plain, wire, mut desc) = (plain.clone(), wire.clone(), desc.clone());
            async move {
                let dst = tmpdir(name);
                desc.name = Some(format!("{name}.bin"));
                let session = ctx(Role::Responder, desc.to_description(), None);
                let notes = &session.notes;
                notes.hash_wire();
                notes.update_wire(&wire);
                for h in &sums {
                    notes.add_info(crate::ft::checksum_element("initiator", "c", h));
                }
                let mut s = cut_stream(&plain).await;
                let r = receive_file_within(
                    &dst,
                    &desc,
                    0,
                    false,
                    None,
                    &mut s,
                    None,
                    None,
                    Some(&session),
                    None,
                )
                .await;
                let kept = dst.join(format!("{name}.bin")).exists();
                std::fs::remove_dir_all(&dst).unwrap();
                (r, kept)
            }
        };
        let of = |algo, bytes: &[u8]| FileHash::of(algo, bytes);
        // Conversations: SHA-1 and SHA-256 of the wire bytes.
        let (r, kept) = run(
            "wire",
            vec![of(HashAlgo::Sha1, &wire), of(HashAlgo::Sha256, &wire)],
        )
        .await;
        assert!(r.unwrap().hash_checked && kept);
        // The spec's form: the file's hash.
        let (r, kept) = run("file", vec![of(HashAlgo::Sha256, &plain)]).await;
        assert!(r.unwrap().hash_checked && kept);
        // No checksum: authenticated, but no hash compared.
        let (r, kept) = run("none", vec![]).await;
        assert!(!r.unwrap().hash_checked && kept);
        // SHA-1 alone, matching: kept, but not called verified.
        let (r, kept) = run("sha1", vec![of(HashAlgo::Sha1, &wire)]).await;
        assert!(!r.unwrap().hash_checked && kept);
        // Matching neither: refused, nothing kept.
        let (r, kept) = run("bad", vec![of(HashAlgo::Sha256, b"something else")]).await;
        assert!(
            matches!(r, Err(Error::Application(ref t)) if t.contains("matches neither")),
            "{r:?}"
        );
        assert!(!kept);
        // An algorithm we do not compute is reported.
        let odd = FileHash {
            algo: "blake2b-256".into(),
            value: "AAAA".into(),
        };
        let (r, kept) = run("odd", vec![odd]).await;
        let got = r.unwrap();
        assert!(!got.hash_checked && kept);
        assert_eq!(got.unchecked, ["blake2b-256"]);
    }

    #[tokio::test]
    async fn offer_to_receiver_round_trip() {
        let src = tmpdir("src1");
        let dst = tmpdir("dst1");
        let bytes = data(1_000_003);
        std::fs::write(src.join("f.bin"), &bytes).unwrap();
        let local = LocalFile::describe(&src.join("f.bin")).await.unwrap();
        assert_eq!(local.desc.size, Some(bytes.len() as u64));
        let offer = FileOffer::new(local, None);
        let seen = Arc::new(Mutex::new(0u64));
        let seen2 = seen.clone();
        let progress: ProgressFn = Arc::new(move |d, _| *seen2.lock().unwrap() = d);
        let recv = FileReceiver::new(dst.clone(), ReceivePolicy::default(), Some(progress));
        let got = transfer(&offer, &recv).await.unwrap();
        let o = offer.offer().unwrap();
        assert_eq!(std::fs::read(dst.join("f.bin")).unwrap(), bytes);
        assert!(got.hash_checked);
        assert_eq!(*seen.lock().unwrap(), bytes.len() as u64);
        // A second offer of the same name is declined: never overwrite.
        assert!(matches!(
            recv.decide(&o.description, o.senders.clone()),
            Decision::Reject(Reason::Decline, _)
        ));
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }

    /// Sends `offer` to `recv` (decide, then both runs).
    async fn transfer(offer: &FileOffer, recv: &FileReceiver) -> Result<ReceivedFile, Error> {
        transfer_framed(offer, recv, None).await
    }

    /// [`transfer`] over a stream of `framing`.
    async fn transfer_framed(
        offer: &FileOffer,
        recv: &FileReceiver,
        framing: Option<Framing>,
    ) -> Result<ReceivedFile, Error> {
        let (ra, rb) = offer_with_late_checksum(offer, recv, None, framing).await;
        ra?;
        rb
    }

    #[tokio::test]
    async fn a_taken_name_is_declined_with_why_or_renamed_to_a_free_one() {
        let src = tmpdir("src-rename");
        let dst = tmpdir("dst-rename");
        let bytes = data(10_001);
        std::fs::write(src.join("report.pdf"), &bytes).unwrap();
        std::fs::write(dst.join("report.pdf"), b"mine").unwrap();
        let local = LocalFile::describe(&src.join("report.pdf")).await.unwrap();
        let offer = FileOffer::new(local, None);
        let o = offer.offer().unwrap();

        // Without renaming: declined, and the text says why (the name
        // only, not our directory).
        let plain = FileReceiver::new(dst.clone(), ReceivePolicy::default(), None);
        match plain.decide(&o.description, o.senders.clone()) {
            Decision::Reject(Reason::Decline, Some(text)) => {
                assert_eq!(text, "report.pdf already exists there");
            }
            other => panic!("expected a decline with a text, got {other:?}"),
        }

        // Renaming: `report (1).pdf`, then `report (2).pdf` (a partial
        // file that is not resumed is in the way of a name as well).
        std::fs::write(dst.join("report (2).pdf.jet-part"), b"other").unwrap();
        let recv = FileReceiver::new(dst.clone(), ReceivePolicy::default(), None).renaming(true);
        let received = [
            transfer(&offer, &recv).await.unwrap(),
            transfer(&offer, &recv).await.unwrap(),
        ];
        let got: Vec<_> = received
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, ["report (1).pdf", "report (3).pdf"]);
        assert_eq!(std::fs::read(dst.join("report.pdf")).unwrap(), b"mine");
        assert_eq!(std::fs::read(dst.join("report (1).pdf")).unwrap(), bytes);
        assert_eq!(std::fs::read(dst.join("report (3).pdf")).unwrap(), bytes);
        assert_eq!(
            std::fs::read(dst.join("report (2).pdf.jet-part")).unwrap(),
            b"other"
        );

        // A name taken after the decision is not overwritten: before the
        // data comes, another free name is taken...
        let recv = FileReceiver::new(dst.clone(), ReceivePolicy::default(), None).renaming(true);
        let answer = accept(recv.decide(&o.description, o.senders.clone()));
        std::fs::write(dst.join("report (4).pdf"), b"meanwhile").unwrap();
        let (a, b) = tokio::io::duplex(4096);
        let (ra, rb) = tokio::join!(
            offer.run(ctx(Role::Initiator, answer.clone(), None), Box::new(a)),
            recv.run(ctx(Role::Responder, answer, None), Box::new(b)),
        );
        ra.unwrap();
        assert_eq!(rb.unwrap().path, dst.join("report (5).pdf"));
        // ... and while it comes, the commit takes the next one.
        let appear = dst.join("report (6).pdf");
        let progress: ProgressFn = Arc::new(move |_, _| {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&appear);
        });
        let recv =
            FileReceiver::new(dst.clone(), ReceivePolicy::default(), Some(progress)).renaming(true);
        let got = transfer(&offer, &recv).await.unwrap();
        assert_eq!(got.path, dst.join("report (7).pdf"));
        assert_eq!(
            std::fs::read(dst.join("report (4).pdf")).unwrap(),
            b"meanwhile"
        );
        assert_eq!(std::fs::read(dst.join("report (6).pdf")).unwrap(), b"");
        for n in [5, 7] {
            let p = dst.join(format!("report ({n}).pdf"));
            assert_eq!(std::fs::read(p).unwrap(), bytes);
        }
        for n in 4..=7 {
            assert!(!dst.join(format!("report ({n}).pdf.jet-part")).exists());
        }
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }

    /// Runs `offer` against `recv` over a pipe with `framing`; the sender's
    /// `on_sent` payload (or `replace`, if given) reaches the receiver's
    /// notes after the data, as a session-info does. With `cut`, the sender
    /// stops after that many bytes (an interrupted transfer).
    async fn offer_with_late_checksum(
        offer: &FileOffer,
        recv: &FileReceiver,
        replace: Option<Element>,
        framing: Option<Framing>,
    ) -> (Result<u64, Error>, Result<ReceivedFile, Error>) {
        offer_with_checksum_over_wire(offer, recv, replace, framing, None).await
    }

    /// [`offer_with_late_checksum`], the receiver's notes holding the hash
    /// of `wire` as the ciphertext's (what the driver records when the
    /// receiver `wants_wire_hashes`).
    async fn offer_with_checksum_over_wire(
        offer: &FileOffer,
        recv: &FileReceiver,
        replace: Option<Element>,
        framing: Option<Framing>,
        wire: Option<&[u8]>,
    ) -> (Result<u64, Error>, Result<ReceivedFile, Error>) {
        let o = offer.offer().unwrap();
        let answer = accept(recv.decide(&o.description, o.senders.clone()));
        let sender_ctx = ctx(Role::Initiator, answer.clone(), framing);
        let receiver_ctx = ctx(Role::Responder, answer, framing);
        let notes = receiver_ctx.notes.clone();
        if let Some(wire) = wire {
            notes.hash_wire();
            notes.update_wire(wire);
        }
        let (a, b) = tokio::io::duplex(4096);
        tokio::join!(
            async {
                let r = offer.run(sender_ctx.clone(), Box::new(a)).await;
                if let Some(info) = replace.or_else(|| offer.on_sent(&sender_ctx)) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    notes.add_info(info);
                }
                r
            },
            recv.run(receiver_ctx, Box::new(b)),
        )
    }

    /// Between jets over JET, a file offered without a hash is neither
    /// hashed nor announced with one (the cipher authenticates it, and a
    /// plaintext hash would reach the server in the clear); a resumed
    /// transfer of it is proven by the sender's checksum of the whole file,
    /// computed while sending, and refused when that checksum is wrong.
    #[tokio::test]
    async fn no_hash_between_jets_unless_a_resume_needs_the_checksum() {
        let chunked = Some(Framing::Chunked { chunk_len: 65536 });
        let src = tmpdir("src-late");
        let dst = tmpdir("dst-late");
        let bytes = data(3_000_017);
        std::fs::write(src.join("late.bin"), &bytes).unwrap();
        let local = LocalFile::stat(&src.join("late.bin")).await.unwrap();
        assert!(local.desc.hashes.is_empty(), "stat reads nothing");
        let offer = FileOffer::new(local.clone(), None);
        let o = offer.offer().unwrap();
        let desc = FileDesc::from_description(&o.description).unwrap();
        assert!(desc.hashes.is_empty() && desc.hash_used.is_empty());
        assert!(desc.date.is_some(), "the date names the file for a resume");
        let recv = FileReceiver::new(dst.clone(), ReceivePolicy::default(), None);
        let (ra, rb) = offer_with_late_checksum(&offer, &recv, None, chunked).await;
        assert_eq!(ra.unwrap(), bytes.len() as u64);
        let got = rb.unwrap();
        assert_eq!(offer.hash(), None, "nothing asked the sender for a hash");
        assert_eq!(got.hash, None, "nor the receiver");
        assert!(!got.hash_checked);
        assert_eq!(std::fs::read(dst.join("late.bin")).unwrap(), bytes);
        // Without a cipher (framing None) the receiver hashes all the same.
        let dst0 = tmpdir("dst-late-plain");
        let recv = FileReceiver::new(dst0.clone(), ReceivePolicy::default(), None);
        let (_, rb) = offer_with_late_checksum(&offer, &recv, None, None).await;
        let want = FileHash::of(HashAlgo::Sha256, &bytes);
        assert!(rb.unwrap().hash.is_some_and(|h| h.matches(&want)));

        // An interrupted chunked transfer leaves 2 authenticated chunks.
        let dst2 = tmpdir("dst-late-resume");
        let mut s = cut_stream(&bytes[..131_072]).await;
        assert!(receive_file(&dst2, &desc, 0, chunked, &mut s, None)
            .await
            .is_err());
        // A resume with a wrong checksum: refused, the bytes stay.
        let recv = FileReceiver::new(dst2.clone(), ReceivePolicy::default(), None);
        let offer = FileOffer::new(local.clone(), None);
        let wrong = crate::ft::checksum_element(
            "initiator",
            "c",
            &FileHash::of(HashAlgo::Sha256, b"another file"),
        );
        let (ra, rb) = offer_with_late_checksum(&offer, &recv, Some(wrong), chunked).await;
        assert_eq!(ra.unwrap(), (bytes.len() - 131_072) as u64);
        let e = rb.unwrap_err().to_string();
        assert!(e.contains("checksum matches neither"), "{e}");
        assert!(!dst2.join("late.bin").exists());
        // The resume that works: the sender hashes the whole file while
        // sending the rest, the receiver compares.
        assert!(
            !dst2.join("late.bin.jet-part").exists(),
            "after a wrong checksum no part is trusted again"
        );
        let mut s = cut_stream(&bytes[..131_072]).await;
        assert!(receive_file_within(
            &dst2, &desc, 0, true, chunked, &mut s, None, None, None, None
        )
        .await
        .is_err());
        let recv = FileReceiver::new(dst2.clone(), ReceivePolicy::default(), None);
        let offer = FileOffer::new(local, None);
        let (ra, rb) = offer_with_late_checksum(&offer, &recv, None, chunked).await;
        assert_eq!(ra.unwrap(), (bytes.len() - 131_072) as u64);
        let got = rb.unwrap();
        assert_eq!(got.resumed_from, 131_072);
        assert!(got.hash_checked, "the whole file's checksum was compared");
        assert_eq!(offer.hash(), Some(want.clone()));
        assert!(got.hash.is_some_and(|h| h.matches(&want)));
        // What went through the server was keyed, not the file's SHA-256.
        let sent = offer
            .on_sent(&ctx(Role::Initiator, o.description.clone(), chunked))
            .unwrap();
        let text = String::from(&sent);
        assert!(text.contains(CHECKSUM_MAC_ALGO), "{text}");
        assert!(!text.contains(&want.value), "{text}");
        assert_eq!(std::fs::read(dst2.join("late.bin")).unwrap(), bytes);
        // The same offer from offset 0 again: no hash, and none of the
        // resume's follows its data.
        let dst3 = tmpdir("dst-late-again");
        let recv = FileReceiver::new(dst3.clone(), ReceivePolicy::default(), None);
        let (ra, rb) = offer_with_late_checksum(&offer, &recv, None, chunked).await;
        assert_eq!(ra.unwrap(), bytes.len() as u64);
        assert_eq!(rb.unwrap().hash, None);
        assert_eq!(offer.hash(), None, "the earlier session's hash is gone");
        for d in [src, dst, dst0, dst2, dst3] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    /// A receiver that saves under a free name when the offered one is
    /// taken (`--rename`) still resumes a hash-less offer's partial file:
    /// it is matched by the same key (name, size, date) its record was
    /// written with, not taken for another file in the way.
    #[tokio::test]
    async fn a_renaming_receiver_resumes_a_hashless_offer() {
        let chunked = Some(Framing::Chunked { chunk_len: 65536 });
        let src = tmpdir("src-rename-resume");
        let dst = tmpdir("dst-rename-resume");
        let bytes = data(500_000);
        std::fs::write(src.join("r.bin"), &bytes).unwrap();
        let local = LocalFile::stat(&src.join("r.bin")).await.unwrap();
        let mut s = cut_stream(&bytes[..200_000]).await;
        assert!(receive_file(&dst, &local.desc, 0, chunked, &mut s, None)
            .await
            .is_err());
        let recv = FileReceiver::new(dst.clone(), ReceivePolicy::default(), None).renaming(true);
        let offer = FileOffer::new(local, None);
        let o = offer.offer().unwrap();
        assert_eq!(recv.name_taken(&o.description), None, "only a partial file");
        let (ra, rb) = offer_with_late_checksum(&offer, &recv, None, chunked).await;
        // Three whole 64 KiB chunks were authenticated before the cut.
        assert_eq!(ra.unwrap(), (bytes.len() - 196_608) as u64);
        let got = rb.unwrap();
        assert_eq!(got.resumed_from, 196_608);
        assert_eq!(got.path, dst.join("r.bin"));
        assert!(std::fs::read(&got.path).unwrap() == bytes);
        assert_eq!(
            std::fs::read_dir(&dst).unwrap().count(),
            1,
            "no r (1).bin, no part left"
        );
        // Now the name is taken: the question's free name is the one used.
        let (taken, free) = recv.name_taken(&o.description).unwrap();
        assert_eq!(
            (taken.as_str(), free.as_deref()),
            ("r.bin", Some("r (1).bin"))
        );
        let got = transfer_framed(&offer, &recv, chunked).await.unwrap();
        assert_eq!(got.path, dst.join("r (1).bin"));
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }

    /// A resumed send's data does not wait for the hash of the whole file
    /// (which begins with the part the receiver has: on a slow disk, long
    /// enough for the receiver's stall timeout): the hash is computed on
    /// its own thread. Here that thread cannot even open the file (a FIFO
    /// with no writer yet) while every data byte arrives.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_resumed_send_does_not_wait_for_the_hash() {
        let dir = tmpdir("hash-beside");
        let bytes = data(3_000_000);
        std::fs::write(dir.join("f.bin"), &bytes).unwrap();
        let fifo = dir.join("hash.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let f = std::fs::File::open(dir.join("f.bin")).unwrap();
        let (offset, len) = (1_000_000u64, bytes.len() as u64);
        let mut source = read_ahead(f, &fifo, offset, len - offset, Some(len)).unwrap();
        let mut got = Vec::new();
        while (got.len() as u64) < len - offset {
            let next = tokio::time::timeout(Duration::from_secs(20), source.data.recv()).await;
            got.extend(
                next.expect("the data waited for the hash")
                    .unwrap()
                    .unwrap(),
            );
        }
        assert!(got[..] == bytes[offset as usize..]);
        // Now the hashing thread can read: the whole file's hash.
        let writer = {
            let (fifo, bytes) = (fifo.clone(), bytes.clone());
            std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
        };
        let hash = source.hash.take().unwrap().await.unwrap().unwrap();
        writer.join().unwrap();
        assert!(hash.matches(&FileHash::of(HashAlgo::Sha256, &bytes)));
        // A send that ends (its source dropped) stops the hashing thread:
        // it reads no further, so the FIFO's writer finds no reader.
        let f = std::fs::File::open(dir.join("f.bin")).unwrap();
        let source = read_ahead(f, &fifo, offset, len - offset, Some(len)).unwrap();
        drop(source);
        let w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let wrote = std::io::Write::write_all(&mut &w, &bytes);
        assert!(wrote.is_err(), "the hashing thread read the whole file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A sender that resumed a file gives the receiver more time for its
    /// verdict, as long as hashing the whole file on a slow disk takes
    /// (the receiver may hash the part it had at the end); none otherwise.
    #[tokio::test]
    async fn a_resumed_send_waits_longer_for_the_verdict() {
        let dir = tmpdir("grace");
        std::fs::write(dir.join("g.bin"), b"g").unwrap();
        let mut local = LocalFile::stat(&dir.join("g.bin")).await.unwrap();
        local.desc.size = Some(100 * SLOW_HASH_RATE);
        let offer = FileOffer::new(local.clone(), None);
        let mut desc = local.desc.clone();
        let c = ctx(Role::Initiator, desc.to_description(), None);
        assert_eq!(offer.verdict_grace(&c), Duration::ZERO, "no resume");
        desc.range = Some(Range {
            offset: 1,
            length: None,
        });
        let c = ctx(Role::Initiator, desc.to_description(), None);
        assert_eq!(offer.verdict_grace(&c), Duration::from_secs(100));
        // With a hash in the offer too (the receiver still hashes it all).
        desc.hashes.push(FileHash::of(HashAlgo::Sha256, b"g"));
        let c = ctx(Role::Initiator, desc.to_description(), None);
        assert_eq!(offer.verdict_grace(&c), Duration::from_secs(100));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A resumed session's checksum is compared with the whole file only:
    /// one that matches the ciphertext of this session (which covers the
    /// bytes after the offset alone, and which a relaying server can hash)
    /// does not vouch for the part received earlier, which may be another
    /// file's with the same name, size and date.
    #[tokio::test]
    async fn a_resumed_file_is_not_proven_by_a_checksum_of_the_ciphertext() {
        let chunked = Some(Framing::Chunked { chunk_len: 65536 });
        let src = tmpdir("src-wire-resume");
        let dst = tmpdir("dst-wire-resume");
        let bytes = data(400_000);
        std::fs::write(src.join("w.bin"), &bytes).unwrap();
        let local = LocalFile::stat(&src.join("w.bin")).await.unwrap();
        // Another file's first two chunks, under this one's name, size
        // and date, from an earlier, interrupted transfer.
        let other = data(400_001)[1..].to_vec();
        let mut s = cut_stream(&other[..140_000]).await;
        assert!(receive_file(&dst, &local.desc, 0, chunked, &mut s, None)
            .await
            .is_err());
        let recv = FileReceiver::new(dst.clone(), ReceivePolicy::default(), None);
        let offer = FileOffer::new(local, None);
        let o = offer.offer().unwrap();
        let mut resumed = o.description.clone();
        resumed = accept(recv.decide(&resumed, o.senders.clone()));
        let ctx_r = ctx(Role::Responder, resumed, chunked);
        assert!(
            !recv.wants_wire_hashes(&ctx_r),
            "a resumed session's ciphertext is not worth hashing"
        );
        // Even if the notes held it: a checksum of that ciphertext.
        let wire = b"this session's ciphertext, as relayed";
        let forged =
            crate::ft::checksum_element("initiator", "c", &FileHash::of(HashAlgo::Sha256, wire));
        let (ra, rb) =
            offer_with_checksum_over_wire(&offer, &recv, Some(forged), chunked, Some(wire)).await;
        assert_eq!(ra.unwrap(), (bytes.len() - 131_072) as u64);
        let e = rb.unwrap_err().to_string();
        assert!(e.contains("checksum matches neither"), "{e}");
        assert!(!dst.join("w.bin").exists(), "no spliced file");
        assert!(!dst.join("w.bin.jet-part").exists(), "nor its parts");
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }

    #[tokio::test]
    async fn wrong_content_is_not_committed() {
        let dst = tmpdir("dst2");
        let mut desc = FileDesc::named("x.bin", 4);
        desc.hashes.push(FileHash::of(HashAlgo::Sha256, b"good"));
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"evil").await.unwrap();
        a.shutdown().await.unwrap();
        let mut s: BoxedStream = Box::new(b);
        assert!(receive_file(&dst, &desc, 0, None, &mut s, None)
            .await
            .is_err());
        assert!(!dst.join("x.bin").exists());
        // More bytes than announced is refused too.
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"goodmore").await.unwrap();
        a.shutdown().await.unwrap();
        let mut s: BoxedStream = Box::new(b);
        assert!(receive_file(&dst, &desc, 0, None, &mut s, None)
            .await
            .is_err());
        assert!(!dst.join("x.bin").exists());
        std::fs::remove_dir_all(&dst).unwrap();
    }

    #[tokio::test]
    async fn interruption_keeps_only_authenticated_bytes_then_request_resumes() {
        let src = tmpdir("src3");
        let dst = tmpdir("dst3");
        let bytes = data(300_000);
        std::fs::write(src.join("r.bin"), &bytes).unwrap();
        let local = LocalFile::describe(&src.join("r.bin")).await.unwrap();
        let desc = local.desc.clone();
        // Whole-stream framing: an interrupted transfer keeps nothing.
        for (framing, kept) in [
            (
                Some(Framing::SingleMessage {
                    max_plaintext: u64::MAX,
                }),
                0u64,
            ),
            (Some(Framing::Chunked { chunk_len: 65536 }), 131_072),
        ] {
            let mut s = cut_stream(&bytes[..131_072]).await; // cut: EOF before the announced size
            assert!(receive_file(&dst, &desc, 0, framing, &mut s, None)
                .await
                .is_err());
            let part = dst.join("r.bin.jet-part");
            assert!(!dst.join("r.bin").exists());
            assert_eq!(std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0), kept);
        }
        // Resume with a request for the rest (XEP-0391 listing 3).
        let req = FileRequest::new(
            dst.clone(),
            desc.hashes[0].clone(),
            Some("r.bin".into()),
            None,
        )
        .unwrap();
        assert_eq!(req.offset(), 131_072);
        let host = FileHost::new(vec![local], None);
        let o = req.offer().unwrap();
        assert_eq!(o.senders, Senders::Responder);
        let answer = accept(host.decide(&o.description, o.senders.clone()));
        let (a, b) = tokio::io::duplex(4096);
        let (ra, rb) = tokio::join!(
            req.run(ctx(Role::Initiator, answer.clone(), None), Box::new(a)),
            host.run(ctx(Role::Responder, answer, None), Box::new(b)),
        );
        let got = ra.unwrap();
        rb.unwrap();
        assert_eq!(std::fs::read(dst.join("r.bin")).unwrap(), bytes);
        assert_eq!(got.resumed_from, 131_072);
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }

    /// `FileRequest::with_max_size`: a host answering with a larger file
    /// is refused before any data lands; within the limit it is received.
    #[tokio::test]
    async fn request_refuses_files_over_its_size_limit() {
        let src = tmpdir("src-reqmax");
        let dst = tmpdir("dst-reqmax");
        let bytes = data(5000);
        std::fs::write(src.join("q.bin"), &bytes).unwrap();
        let local = LocalFile::describe(&src.join("q.bin")).await.unwrap();
        let hash = local.desc.hashes[0].clone();
        let host = FileHost::new(vec![local], None);
        for (limit, ok) in [(4999u64, false), (5000, true)] {
            let req = FileRequest::new(dst.clone(), hash.clone(), None, None)
                .unwrap()
                .with_max_size(limit);
            let o = req.offer().unwrap();
            let answer = accept(host.decide(&o.description, o.senders.clone()));
            let (a, b) = tokio::io::duplex(4096);
            let (ra, _) = tokio::join!(
                req.run(ctx(Role::Initiator, answer.clone(), None), Box::new(a)),
                host.run(ctx(Role::Responder, answer, None), Box::new(b)),
            );
            if ok {
                ra.unwrap();
                assert_eq!(std::fs::read(dst.join("q.bin")).unwrap(), bytes);
            } else {
                let e = ra.unwrap_err();
                assert!(matches!(e, Error::Refused { .. }), "{e}");
                assert!(e.to_string().contains("limit of 4999 bytes"), "{e}");
                assert_eq!(std::fs::read_dir(&dst).unwrap().count(), 0);
            }
        }
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }

    #[tokio::test]
    async fn host_refuses_unknown_files_and_receiver_refuses_requests() {
        let host = FileHost::new(vec![], None);
        let req = FileRequest::new(
            std::env::temp_dir(),
            FileHash::of(HashAlgo::Sha256, b"x"),
            None,
            None,
        )
        .unwrap();
        let o = req.offer().unwrap();
        assert!(matches!(
            host.decide(&o.description, o.senders.clone()),
            Decision::Reject(Reason::Decline, _)
        ));
        let recv = FileReceiver::new(std::env::temp_dir(), ReceivePolicy::default(), None);
        assert!(matches!(
            recv.decide(&o.description, o.senders.clone()),
            Decision::Reject(..)
        ));
        // Size limit.
        let small = FileReceiver::new(
            std::env::temp_dir(),
            ReceivePolicy {
                max_size: 10,
                resume: false,
            },
            None,
        );
        let d = FileDesc::named("big.bin", 11).to_description();
        assert!(matches!(
            small.decide(&d, Senders::Initiator),
            Decision::Reject(Reason::Decline, _)
        ));
        // Path traversal in the name is reduced to its last component.
        let d = FileDesc::named("../../etc/passwd", 1).to_description();
        let dir = tmpdir("trav");
        let r = FileReceiver::new(dir.clone(), ReceivePolicy::default(), None);
        let ans = accept(r.decide(&d, Senders::Initiator));
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"x").await.unwrap();
        a.shutdown().await.unwrap();
        r.run(ctx(Role::Responder, ans, None), Box::new(b))
            .await
            .unwrap();
        assert!(dir.join("passwd").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Whole-stream mode: a stream cut short fails as `Truncated` (the
    /// announced size shows it), a complete but tampered one as
    /// `Authentication`; neither is committed.
    #[tokio::test]
    async fn a_cut_whole_stream_is_reported_as_truncated() {
        for size in [10_000, 3 << 20] {
            cut_or_tampered(size).await;
        }
    }

    async fn cut_or_tampered(size: usize) {
        use crate::layer::{Direction, JetStream};
        use crate::secret::TransportSecret;
        use crate::testkit::TEST_XOR;
        let dst = tmpdir(&format!("trunc{size}"));
        let plain = data(size);
        let mut desc = FileDesc::named("t.bin", plain.len() as u64);
        desc.hashes.push(FileHash::of(HashAlgo::Sha256, &plain));
        let secret = TransportSecret::new(vec![7; 16], vec![9; 12]).unwrap();
        let framing = Some(crate::cipher::CipherSuite::framing(&TEST_XOR));
        let (a, mut b) = tokio::io::duplex(size + (1 << 16));
        let mut enc = JetStream::new(a, &TEST_XOR, &secret, Direction::Send).unwrap();
        enc.write_all(&plain).await.unwrap();
        enc.shutdown().await.unwrap();
        drop(enc);
        let mut wire = Vec::new();
        b.read_to_end(&mut wire).await.unwrap();
        for (cut, flip, expected) in [
            (wire.len() / 2, false, CipherError::Truncated),
            (wire.len(), true, CipherError::Authentication),
        ] {
            let mut bytes = wire[..cut].to_vec();
            if flip {
                bytes[10] ^= 1;
            }
            let (mut a, b) = tokio::io::duplex(1 << 16);
            let feeder = tokio::spawn(async move {
                let _ = a.write_all(&bytes).await;
            });
            let mut dec = JetStream::new(b, &TEST_XOR, &secret, Direction::Receive).unwrap();
            // As the driver does for a file of known size.
            dec.set_expected_len(wire.len() as u64);
            let mut s: BoxedStream = Box::new(dec);
            match receive_file(&dst, &desc, 0, framing, &mut s, None).await {
                Err(Error::Cipher(e)) => assert_eq!(e, expected),
                other => panic!("expected {expected:?}, got {other:?}"),
            }
            drop(s);
            feeder.await.unwrap();
            assert!(!dst.join("t.bin").exists());
            assert!(!dst.join("t.bin.jet-part").exists());
        }
        std::fs::remove_dir_all(&dst).unwrap();
    }

    /// An offer without `<size/>` passes the size check in `decide`; the
    /// limit still holds while the data arrives, and nothing is committed.
    #[tokio::test]
    async fn a_sizeless_offer_cannot_exceed_max_size() {
        let dir = tmpdir("sizeless");
        let r = FileReceiver::new(
            dir.clone(),
            ReceivePolicy {
                max_size: 10,
                resume: false,
            },
            None,
        );
        let desc = FileDesc {
            name: Some("nosize.bin".into()),
            ..Default::default()
        };
        assert!(desc.size.is_none());
        let ans = accept(r.decide(&desc.to_description(), Senders::Initiator));
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"eleven byte").await.unwrap();
        a.shutdown().await.unwrap();
        let e = r
            .run(ctx(Role::Responder, ans.clone(), None), Box::new(b))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("limit of 10 bytes"), "{e}");
        assert!(!dir.join("nosize.bin").exists());
        assert!(!dir.join("nosize.bin.jet-part").exists());
        // Within the limit it is received.
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"ten bytes!").await.unwrap();
        a.shutdown().await.unwrap();
        r.run(ctx(Role::Responder, ans, None), Box::new(b))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.join("nosize.bin")).unwrap(),
            b"ten bytes!"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A `jet receive --resume` after a crash: a partial file whose record
    /// does not vouch for its bytes (whole-stream: nothing authenticated)
    /// is answered from offset 0 and received again from zero; a chunked
    /// one at its recorded boundary. Without resume, the leftover partial
    /// file refuses the offer with a text that names no local directory.
    #[tokio::test]
    async fn receiver_resumes_only_what_the_record_vouches_for() {
        let src = tmpdir("src-rec");
        let dst = tmpdir("dst-rec");
        let bytes = data(200_000);
        std::fs::write(src.join("k.bin"), &bytes).unwrap();
        let local = LocalFile::describe(&src.join("k.bin")).await.unwrap();
        let offer = FileOffer::new(local.clone(), None);
        let o = offer.offer().unwrap();
        let part = dst.join("k.bin.jet-part");
        let info = crate::ft_fs::PartialInfo::of(&local.desc, None);
        for (chunk_len, recorded, want) in [(None, 0u64, 0u64), (Some(65536), 65536, 65536)] {
            // What a crash left: 150,000 bytes (garbage past the recorded
            // prefix), and a record of `recorded` authenticated bytes.
            let mut junk = bytes[..150_000].to_vec();
            junk[100_000] ^= 0xff;
            std::fs::write(&part, &junk).unwrap();
            let state = crate::ft_fs::state_path(&dst, "k.bin");
            let rec = format!(
                "jet-part-state 1\nframing {}\nsize {}\nhash {} {}\nauthenticated {recorded}\n",
                chunk_len
                    .map(|c| format!("chunked {c}"))
                    .unwrap_or("whole".into()),
                bytes.len(),
                info.hash.as_ref().unwrap().algo,
                info.hash.as_ref().unwrap().value,
            );
            std::fs::write(&state, rec).unwrap();
            let no_resume = FileReceiver::new(
                dst.clone(),
                ReceivePolicy {
                    resume: false,
                    ..Default::default()
                },
                None,
            );
            let answer = accept(no_resume.decide(&o.description, o.senders.clone()));
            let (_a, b) = tokio::io::duplex(64);
            let e = no_resume
                .run(ctx(Role::Responder, answer, None), Box::new(b))
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("k.bin.jet-part exists"), "{e}");
            assert!(!e.contains(&*dst.to_string_lossy()), "local path in {e}");
            assert_eq!(std::fs::read(&part).unwrap(), junk, "left alone");

            let recv = FileReceiver::new(dst.clone(), ReceivePolicy::default(), None);
            let answer = accept(recv.decide(&o.description, o.senders.clone()));
            assert_eq!(accepted_range(&answer).unwrap().offset, want);
            let framing = chunk_len.map(|c| Framing::Chunked {
                chunk_len: c as usize,
            });
            let (a, b) = tokio::io::duplex(4096);
            let (ra, rb) = tokio::join!(
                offer.run(ctx(Role::Initiator, answer.clone(), framing), Box::new(a)),
                recv.run(ctx(Role::Responder, answer, framing), Box::new(b)),
            );
            ra.unwrap();
            let got = rb.unwrap();
            assert_eq!(std::fs::read(dst.join("k.bin")).unwrap(), bytes);
            assert_eq!(got.resumed_from, want);
            let left: Vec<_> = std::fs::read_dir(&dst)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left, vec![std::ffi::OsString::from("k.bin")]);
            std::fs::remove_file(dst.join("k.bin")).unwrap();
        }
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }

    #[test]
    fn xep0082_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(xep0082(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            xep0082(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            xep0082(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
