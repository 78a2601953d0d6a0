//! Where received files are written: a partial file that becomes the final
//! file only after authentication and the hash check (feature `tokio`).
//!
//! Invariant: bytes that are not yet authenticated never land under the final
//! file name. [`IncomingFile`] writes to `NAME.jet-part` in the target
//! directory, hashes the plaintext as it goes, and
//! [`IncomingFile::commit`] links it to `NAME` only when the caller says the
//! stream authenticated and the hash matches, refusing to overwrite an
//! existing file. [`IncomingFile::abandon`] keeps the partial file for a
//! resume (truncated to the authenticated length) or removes it.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use jet_core::ft::{FileHash, HashAlgo};
//! use jet_core::ft_fs::IncomingFile;
//! let dir = std::env::temp_dir().join(format!("jet-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let mut f = IncomingFile::create(&dir, "../evil/hello.txt", HashAlgo::Sha256, false).await.unwrap();
//! f.write(b"hello").await.unwrap();
//! let path = f.commit(Some(&FileHash::of(HashAlgo::Sha256, b"hello"))).await.unwrap();
//! assert_eq!(path, dir.join("hello.txt"));
//! assert_eq!(std::fs::read(&path).unwrap(), b"hello");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```

use std::io;
use std::path::{Path, PathBuf};

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Error;
use crate::ft::{sanitize_file_name, FileHash, HashAlgo, Hasher};

/// Suffix of partial files.
pub const PARTIAL_SUFFIX: &str = ".jet-part";

/// The partial-file path for a final file name in `dir`.
pub fn partial_path(dir: &Path, safe_name: &str) -> PathBuf {
    dir.join(format!("{safe_name}{PARTIAL_SUFFIX}"))
}

/// A file being received.
#[derive(Debug)]
pub struct IncomingFile {
    final_path: PathBuf,
    partial: PathBuf,
    file: Option<File>,
    hasher: Hasher,
    written: u64,
    /// Bytes known to be authenticated (what survives a cancellation).
    authenticated: u64,
}

impl IncomingFile {
    /// Starts receiving `peer_name` (sanitized to one path component) into
    /// `dir`. Fails if the final file exists. With `resume`, an existing
    /// partial file is kept and hashed, and writing continues at its end
    /// ([`offset`](Self::offset)); otherwise an existing partial file is an
    /// error (another transfer may be using it).
    pub async fn create(
        dir: &Path,
        peer_name: &str,
        algo: HashAlgo,
        resume: bool,
    ) -> Result<Self, Error> {
        let name = sanitize_file_name(peer_name)?;
        let final_path = dir.join(&name);
        if tokio::fs::symlink_metadata(&final_path).await.is_ok() {
            return Err(Error::Application(format!(
                "{} already exists; jet never overwrites a file",
                final_path.display()
            )));
        }
        let partial = partial_path(dir, &name);
        let mut hasher = Hasher::new(algo);
        let mut written = 0;
        let file = if resume && tokio::fs::symlink_metadata(&partial).await.is_ok() {
            let mut f = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&partial)
                .await?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                written += n as u64;
            }
            f
        } else {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&partial)
                .await
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Error::Application(format!(
                            "{} exists: an earlier transfer was interrupted (resume it, or remove the file)",
                            partial.display()
                        ))
                    } else {
                        Error::Io(e)
                    }
                })?
        };
        Ok(IncomingFile {
            final_path,
            partial,
            file: Some(file),
            hasher,
            written,
            // A resumed prefix was authenticated by an earlier session.
            authenticated: written,
        })
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

    /// Appends plaintext. A failed write (a full disk, a file-size limit)
    /// names the partial file in its error (its name only: the text may
    /// reach the peer in a `session-terminate`, our directories may not).
    pub async fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        let f = self.file.as_mut().ok_or_else(closed)?;
        let name = self
            .partial
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let failed =
            |e: io::Error| Error::Io(io::Error::new(e.kind(), format!("writing {name}: {e}")));
        f.write_all(data).await.map_err(failed)?;
        // tokio's File completes writes in the background; wait for it, so
        // that what `written` counts is in the file (cancellation safety).
        f.flush().await.map_err(failed)?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Records that the first `n` bytes are authenticated (chunked mode:
    /// every released chunk). If the transfer is cancelled (this value is
    /// dropped without [`commit`](Self::commit) or
    /// [`abandon`](Self::abandon)), the partial file is cut back to these
    /// bytes, or removed when there are none.
    pub fn set_authenticated(&mut self, n: u64) {
        self.authenticated = n.min(self.written);
    }

    /// The hash of everything written so far.
    pub fn current_hash(&self) -> FileHash {
        self.hasher.clone().finish()
    }

    /// Call only once the stream authenticated. Checks `expected` (when the
    /// peer gave a hash), syncs, and links the partial file to the final name
    /// without overwriting. On a hash mismatch the partial file is removed.
    pub async fn commit(mut self, expected: Option<&FileHash>) -> Result<PathBuf, Error> {
        let mut f = self.file.take().ok_or_else(closed)?;
        f.flush().await?;
        f.sync_all().await?;
        drop(f);
        let got = self.hasher.clone().finish();
        if let Some(exp) = expected {
            if exp.algorithm() == Some(self.hasher.algo()) && !exp.matches(&got) {
                let _ = tokio::fs::remove_file(&self.partial).await;
                return Err(Error::Application(format!(
                    "the received file's {} does not match the sender's hash: got {}, expected {}",
                    exp.algo, got.value, exp.value
                )));
            }
        }
        // hard_link fails if the target exists: no overwrite, even in a race.
        tokio::fs::hard_link(&self.partial, &self.final_path)
            .await
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Error::Application(format!(
                        "{} appeared while receiving; not overwritten (data kept in {})",
                        self.final_path.display(),
                        self.partial.display()
                    ))
                } else {
                    Error::Io(e)
                }
            })?;
        tokio::fs::remove_file(&self.partial).await?;
        Ok(self.final_path.clone())
    }

    /// Gives up. With `keep_authenticated = Some(n)`, the partial file is
    /// truncated to its first `n` bytes (the authenticated part) and kept for
    /// a resume; with `None` it is removed.
    pub async fn abandon(mut self, keep_authenticated: Option<u64>) -> Result<(), Error> {
        let f = self.file.take();
        match keep_authenticated {
            Some(n) if n > 0 => {
                if let Some(f) = f {
                    f.set_len(n.min(self.written)).await?;
                    f.sync_all().await?;
                }
                Ok(())
            }
            _ => {
                drop(f);
                match tokio::fs::remove_file(&self.partial).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

impl Drop for IncomingFile {
    /// Cancellation safety: a transfer dropped mid-way (its task aborted, the
    /// peer gone) keeps only authenticated bytes in the partial file.
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            drop(f);
            if self.authenticated == 0 {
                let _ = std::fs::remove_file(&self.partial);
            } else if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&self.partial) {
                let _ = f.set_len(self.authenticated);
                let _ = f.sync_all();
            }
        }
    }
}

fn closed() -> Error {
    Error::Application("the incoming file is already closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jet-ftfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn commit_only_with_matching_hash_and_never_overwrites() {
        let dir = tmpdir("commit");
        let mut f = IncomingFile::create(&dir, "a.bin", HashAlgo::Sha256, false)
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
        assert!(IncomingFile::create(&dir, "b.bin", HashAlgo::Sha256, false)
            .await
            .is_err());
        assert_eq!(std::fs::read(dir.join("b.bin")).unwrap(), b"old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn path_traversal_stays_in_dir() {
        let dir = tmpdir("trav");
        let mut f = IncomingFile::create(&dir, "../../x/../passwd", HashAlgo::Sha256, false)
            .await
            .unwrap();
        f.write(b"1").await.unwrap();
        let p = f.commit(None).await.unwrap();
        assert_eq!(p, dir.join("passwd"));
        assert!(IncomingFile::create(&dir, "..", HashAlgo::Sha256, false)
            .await
            .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn abandon_keeps_authenticated_prefix_for_resume() {
        let dir = tmpdir("resume");
        let mut f = IncomingFile::create(&dir, "r.bin", HashAlgo::Sha256, false)
            .await
            .unwrap();
        f.write(b"0123456789").await.unwrap();
        f.abandon(Some(4)).await.unwrap();
        assert_eq!(std::fs::read(dir.join("r.bin.jet-part")).unwrap(), b"0123");
        // A fresh (non-resume) transfer refuses to clobber the partial file.
        assert!(IncomingFile::create(&dir, "r.bin", HashAlgo::Sha256, false)
            .await
            .is_err());
        let mut f = IncomingFile::create(&dir, "r.bin", HashAlgo::Sha256, true)
            .await
            .unwrap();
        assert_eq!(f.offset(), 4);
        f.write(b"456789").await.unwrap();
        let p = f
            .commit(Some(&FileHash::of(HashAlgo::Sha256, b"0123456789")))
            .await
            .unwrap();
        assert_eq!(std::fs::read(p).unwrap(), b"0123456789");
        // Dropped mid-way (cancelled): only the authenticated prefix stays.
        let mut f = IncomingFile::create(&dir, "d.bin", HashAlgo::Sha256, false)
            .await
            .unwrap();
        f.write(b"abcdef").await.unwrap();
        f.set_authenticated(2);
        drop(f);
        assert_eq!(std::fs::read(dir.join("d.bin.jet-part")).unwrap(), b"ab");
        let mut f = IncomingFile::create(&dir, "e.bin", HashAlgo::Sha256, false)
            .await
            .unwrap();
        f.write(b"unauthenticated").await.unwrap();
        drop(f);
        assert!(!dir.join("e.bin.jet-part").exists());
        // Abandon without keeping removes the partial file.
        let f = IncomingFile::create(&dir, "s.bin", HashAlgo::Sha256, false)
            .await
            .unwrap();
        f.abandon(None).await.unwrap();
        assert!(!dir.join("s.bin.jet-part").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
