//! `jet ciphers`, `jet encrypt`, `jet decrypt`: the cipher layer on files.
//!
//! Decryption never leaves unauthenticated bytes under OUT's name: the
//! plaintext goes to a temporary file next to OUT (or in the temporary
//! directory for stdout and special files) and takes OUT's name only after
//! the whole stream authenticated.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use jet_ciphers::{cipher_error_of, decrypt_blocking, encrypt_blocking};
use jet_core::cipher::{CipherSuite, Framing};
use jet_core::TransportSecret;

/// Long help of `jet encrypt`.
pub const ENCRYPT_LONG_ABOUT: &str = "\
Encrypt IN (plaintext) into OUT (ciphertext) with the given cipher, key and IV.

The XEP-0391 ciphers (aes-128/256-gcm-nopadding) make the whole stream ONE \
AES-GCM message with the 16-byte tag appended, byte for byte what Dino and \
Conversations send and what Python's AESGCM(key).encrypt(iv, data, None) \
returns. One such message holds at most 2^36 - 32 bytes (64 GiB); the jet \
extension urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0 has no such limit and \
authenticates every 64 KiB chunk. Memory use is constant. A regular OUT is \
written through a temporary file and renamed when complete.";

/// Long help of `jet decrypt`.
pub const DECRYPT_LONG_ABOUT: &str = "\
Decrypt IN (ciphertext) into OUT (plaintext) with the given cipher, key and IV.

With the XEP-0391 ciphers (aes-128/256-gcm-nopadding) the whole stream is ONE \
AES-GCM message whose tag is its last 16 bytes: no byte is authenticated until \
the very end. So the plaintext is written to a temporary file in OUT's \
directory and renamed to OUT only when the tag checks. On authentication \
failure jet exits non-zero and leaves no OUT file. With OUT = '-' (stdout) or \
a special file, the plaintext is buffered in a temporary file and copied out \
only after it authenticated.";

/// Arguments shared by `jet encrypt` and `jet decrypt`.
#[derive(clap::Args, Debug)]
pub struct CryptArgs {
    /// Cipher URN, with or without the ':0' suffix (see `jet ciphers`),
    /// e.g. urn:xmpp:ciphers:aes-128-gcm-nopadding:0.
    #[arg(long, short = 'c', value_name = "URN")]
    cipher: String,
    /// Transport key, hex (16 bytes for AES-128, 32 for the others). May come
    /// from $JET_KEY instead, which keeps it out of the process list.
    #[arg(
        long,
        short = 'k',
        value_name = "HEX",
        env = "JET_KEY",
        hide_env_values = true
    )]
    key: String,
    /// Initialization vector, hex: 12 bytes (AES-GCM also accepts the 16-byte
    /// IVs of older Dino versions). Must not equal the key (XEP-0391 §7).
    #[arg(
        long,
        short = 'i',
        value_name = "HEX",
        env = "JET_IV",
        hide_env_values = true
    )]
    iv: String,
    /// Input file, or '-' for standard input.
    #[arg(value_name = "IN")]
    input: PathBuf,
    /// Output file, or '-' for standard output.
    #[arg(value_name = "OUT")]
    output: PathBuf,
}

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// `jet ciphers`: one line per suite, `URN<TAB>key bits<TAB>IV bits<TAB>name [note]`.
pub fn ciphers() -> Result<()> {
    let registry = crate::backends::registry();
    registry.consistency_check()?;
    for suite in &registry {
        println!("{}", cipher_line(suite));
    }
    Ok(())
}

fn cipher_line(suite: &dyn CipherSuite) -> String {
    let ivs: Vec<String> = suite
        .accepted_iv_lens()
        .iter()
        .filter(|&&l| l != suite.iv_len())
        .map(|l| (l * 8).to_string())
        .collect();
    let mut notes = Vec::new();
    if !ivs.is_empty() {
        notes.push(format!("also accepts {}-bit IVs", ivs.join("/")));
    }
    if let Framing::Chunked { chunk_len } = suite.framing() {
        notes.push(format!("{} KiB chunks", chunk_len / 1024));
    }
    if suite.urn().contains(":jet:") {
        notes.push("jet extension".into());
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    format!(
        "{}\t{}\t{}\t{}{}",
        suite.urn(),
        suite.key_len() * 8,
        suite.iv_len() * 8,
        suite.name(),
        notes
    )
}

/// The suite and secret of the arguments, with clear errors.
fn suite_and_secret(args: &CryptArgs) -> Result<(&'static dyn CipherSuite, TransportSecret)> {
    let registry = crate::backends::registry();
    let suite = crate::account::cipher_by_name(&registry, &args.cipher)?;
    let key = hex::decode(args.key.trim()).context("--key is not valid hex")?;
    let iv = hex::decode(args.iv.trim()).context("--iv is not valid hex")?;
    if key.len() != suite.key_len() {
        bail!(
            "wrong key length for {}: expected {} bytes ({} hex digits), got {} bytes",
            suite.urn(),
            suite.key_len(),
            suite.key_len() * 2,
            key.len()
        );
    }
    if !suite.accepted_iv_lens().contains(&iv.len()) {
        bail!(
            "wrong IV length for {}: expected {:?} bytes, got {} bytes",
            suite.urn(),
            suite.accepted_iv_lens(),
            iv.len()
        );
    }
    let secret = TransportSecret::new(key, iv).context("invalid key/IV")?;
    Ok((suite, secret))
}

type Reader = Box<dyn Read + Send>;

/// IN as a blocking reader: the file, or standard input for `-`.
fn open_input(path: &Path) -> Result<Reader> {
    if is_dash(path) {
        return Ok(Box::new(std::io::stdin()));
    }
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(f))
}

/// Where the output goes.
enum Sink {
    /// Standard output.
    Stdout,
    /// An existing file that is not a regular file (e.g. /dev/null, a FIFO):
    /// written in place, never replaced.
    Special(PathBuf),
    /// A regular file: written via a temporary file and a rename.
    Regular(PathBuf),
}

fn sink_of(path: &Path) -> Sink {
    if is_dash(path) {
        return Sink::Stdout;
    }
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => Sink::Special(path.to_owned()),
        _ => Sink::Regular(path.to_owned()),
    }
}

/// A temporary file in `path`'s directory, for an atomic rename onto `path`.
fn temp_next_to(path: &Path) -> Result<tempfile::NamedTempFile> {
    if path.is_dir() {
        bail!("{} is a directory", path.display());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".jet-partial-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// Finishes a temporary file: sync, rename onto `dest`.
fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist(dest)
        .with_context(|| format!("cannot rename the temporary file to {}", dest.display()))?;
    Ok(())
}

/// Runs `job` on tokio's blocking pool: the cipher on that thread, the
/// writes on another ([`jet_ciphers::encrypt_blocking`]), large reads and
/// writes with no hop per piece.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| anyhow!("the cipher thread stopped: {e}"))?
}

/// `jet encrypt`: ciphertext goes straight to stdout or a special file, and
/// through a temporary file + rename to a regular OUT (so a failed run leaves
/// no half-written OUT).
pub async fn encrypt(args: CryptArgs) -> Result<()> {
    let (suite, secret) = suite_and_secret(&args)?;
    let input = open_input(&args.input)?;
    let sink = sink_of(&args.output);
    blocking(move || {
        let failed = |e: std::io::Error| anyhow!(e).context("encryption failed");
        match sink {
            Sink::Stdout => {
                encrypt_blocking(suite, &secret, input, std::io::stdout()).map_err(failed)?;
            }
            Sink::Special(p) => {
                encrypt_blocking(suite, &secret, input, open_special(&p)?).map_err(failed)?;
            }
            Sink::Regular(p) => {
                let tmp = temp_next_to(&p)?;
                encrypt_blocking(suite, &secret, input, tmp.as_file()).map_err(failed)?;
                persist(tmp, &p)?;
            }
        }
        Ok(())
    })
    .await
}

fn open_special(p: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .with_context(|| format!("cannot open {} for writing", p.display()))
}

/// `jet decrypt`: see [`DECRYPT_LONG_ABOUT`].
pub async fn decrypt(args: CryptArgs) -> Result<()> {
    let (suite, secret) = suite_and_secret(&args)?;
    let input = open_input(&args.input)?;
    let sink = sink_of(&args.output);
    let tmp = match &sink {
        Sink::Regular(p) => temp_next_to(p)?,
        Sink::Stdout | Sink::Special(_) => tempfile::Builder::new()
            .prefix(".jet-partial-")
            .tempfile()
            .context("cannot create a temporary file")?,
    };
    let output = args.output.clone();
    blocking(move || {
        // On failure `tmp` is dropped, which deletes it: nothing reaches OUT.
        decrypt_blocking(suite, &secret, input, tmp.as_file()).map_err(
            |e| match cipher_error_of(&e) {
                Some(c) => anyhow!(
                    "decryption failed: {c}; nothing was written to {}",
                    output.display()
                ),
                None => anyhow!(e).context("decryption failed"),
            },
        )?;
        match sink {
            Sink::Regular(p) => persist(tmp, &p)?,
            Sink::Stdout => copy_out(&tmp, std::io::stdout())?,
            Sink::Special(p) => copy_out(&tmp, open_special(&p)?)?,
        }
        Ok(())
    })
    .await
}

/// Copies the authenticated plaintext from the temporary file to `out`.
fn copy_out(tmp: &tempfile::NamedTempFile, mut out: impl Write) -> Result<()> {
    let mut f = tmp.reopen().context("cannot reopen the temporary file")?;
    std::io::copy(&mut f, &mut out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_lines_are_tab_separated_and_machine_readable() {
        let registry = jet_ciphers::CipherRegistry::default();
        for suite in &registry {
            let line = cipher_line(suite);
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "{line}");
            assert_eq!(cols[0], suite.urn());
            assert_eq!(cols[1].parse::<usize>().unwrap(), suite.key_len() * 8);
            assert_eq!(cols[2].parse::<usize>().unwrap(), 96);
            assert_eq!(
                cols[3].contains("jet extension"),
                suite.urn().contains(":jet:")
            );
        }
    }
}
