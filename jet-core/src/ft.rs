//! XEP-0234 Jingle File Transfer vocabulary: the `<file/>` description,
//! XEP-0300 hashes, `<range/>`, and the `<checksum/>` / `<received/>`
//! session-info payloads. No I/O.
//!
//! Parsed from raw elements rather than with `xmpp_parsers::jingle_ft`,
//! which drops `<hash-used/>` and Conversations' `<mediaType/>`.
//!
//! Tolerance for what real clients send (see `INTEROP.md`):
//! - `<media-type>` and `<mediaType>` are both read;
//! - a hash value is base64 of the digest; Libervia sends base64 of the
//!   **hex** digest, which [`FileHash::digest_bytes`] also accepts;
//! - names from the peer are never trusted as paths: see [`sanitize_file_name`].
//!
//! ```
//! use jet_core::ft::{FileDesc, FileHash, HashAlgo};
//! let mut desc = FileDesc::named("test.txt", 6144);
//! desc.media_type = Some("text/plain".into());
//! desc.hashes.push(FileHash::of(HashAlgo::Sha256, b"hello"));
//! let el = desc.to_description();
//! let back = FileDesc::from_description(&el).unwrap();
//! assert_eq!(back, desc);
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use minidom::Element;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use crate::error::ElementError;
use crate::ns;
use crate::xml::BuilderExt;

/// A hash algorithm of XEP-0300 that we compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgo {
    /// `sha-256`, what we send.
    Sha256,
    /// `sha-512`.
    Sha512,
    /// `sha-1`, still sent by old clients (XEP-0391 listings).
    Sha1,
}

impl HashAlgo {
    /// The XEP-0300 name (`sha-256`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "sha-256",
            HashAlgo::Sha512 => "sha-512",
            HashAlgo::Sha1 => "sha-1",
        }
    }

    /// Parses an XEP-0300 name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sha-256" => Some(HashAlgo::Sha256),
            "sha-512" => Some(HashAlgo::Sha512),
            "sha-1" => Some(HashAlgo::Sha1),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha512 => 64,
            HashAlgo::Sha1 => 20,
        }
    }

    /// Preference when choosing which of several offered hashes to verify.
    fn strength(self) -> u8 {
        match self {
            HashAlgo::Sha512 => 3,
            HashAlgo::Sha256 => 2,
            HashAlgo::Sha1 => 1,
        }
    }
}

/// An incremental hasher for one of the [`HashAlgo`]s.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
    /// SHA-1.
    Sha1(Sha1),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hasher({})", self.algo().name())
    }
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algo: HashAlgo) -> Self {
        match algo {
            HashAlgo::Sha256 => Hasher::Sha256(Sha256::new()),
            HashAlgo::Sha512 => Hasher::Sha512(Sha512::new()),
            HashAlgo::Sha1 => Hasher::Sha1(Sha1::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
        }
    }

    /// The algorithm.
    pub fn algo(&self) -> HashAlgo {
        match self {
            Hasher::Sha256(_) => HashAlgo::Sha256,
            Hasher::Sha512(_) => HashAlgo::Sha512,
            Hasher::Sha1(_) => HashAlgo::Sha1,
        }
    }

    /// Feeds `len` bytes of `f` (to its end with `None`) from offset
    /// `from`, read in large pieces on this thread. Returns the bytes read:
    /// fewer than `len` only when the file ends first.
    pub fn update_from(
        &mut self,
        f: &mut std::fs::File,
        from: u64,
        len: Option<u64>,
    ) -> std::io::Result<u64> {
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(from))?;
        self.update_reader(f, len)
    }

    /// Hashes what `r` gives, `len` bytes at most (to its end without
    /// `len`), in large reads; the number of bytes hashed.
    pub fn update_reader(
        &mut self,
        r: &mut impl std::io::Read,
        len: Option<u64>,
    ) -> std::io::Result<u64> {
        let mut buf = vec![0u8; HASH_READ.min(len.unwrap_or(u64::MAX)) as usize];
        let mut done = 0u64;
        while len.is_none_or(|l| done < l) {
            let want = len.map_or(buf.len() as u64, |l| (l - done).min(buf.len() as u64));
            match r.read(&mut buf[..want as usize]) {
                Ok(0) => break,
                Ok(n) => {
                    self.update(&buf[..n]);
                    done += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// The finished hash.
    pub fn finish(self) -> FileHash {
        let algo = self.algo();
        let value = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
        };
        FileHash {
            algo: algo.name().to_string(),
            value: B64.encode(value),
        }
    }
}

/// Read size of [`Hasher::update_from`].
const HASH_READ: u64 = 1024 * 1024;

/// The `algo` of a keyed checksum ([`ChecksumKey`]): jet's own, not an
/// XEP-0300 hash. Other clients report it as an algorithm they do not
/// compute.
pub const CHECKSUM_MAC_ALGO: &str = "hmac-sha-256-jet";

/// A key only the two ends of a session have, derived from its transport
/// secret, for the checksum a resumed transfer sends in the clear
/// (`session-info`, XEP-0234): that checksum is an HMAC of the file's
/// SHA-256 under this key, not the SHA-256 itself. The server, which
/// relays it but has no transport secret, can neither use it as a
/// fingerprint of the file nor forge one that matches.
#[derive(Clone)]
pub struct ChecksumKey(zeroize::Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ChecksumKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChecksumKey(..)")
    }
}

impl ChecksumKey {
    /// HMAC-SHA-256 under the transport key of a fixed label and the IV:
    /// a key for nothing but checksums (never the cipher's key itself).
    pub fn derive(secret: &crate::secret::TransportSecret) -> Self {
        let mut mac = Self::mac(secret.key());
        hmac::Mac::update(&mut mac, b"urn:xmpp:jet:checksum-key:0\0");
        hmac::Mac::update(&mut mac, secret.iv());
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&hmac::Mac::finalize(mac).into_bytes());
        ChecksumKey(key)
    }

    fn mac(key: &[u8]) -> hmac::Hmac<Sha256> {
        <hmac::Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
            .expect("HMAC takes any key length")
    }

    fn keyed(&self, hash: &FileHash) -> Option<hmac::Hmac<Sha256>> {
        let digest = hash.digest_bytes().ok()?;
        let mut mac = Self::mac(&self.0[..]);
        hmac::Mac::update(&mut mac, hash.algo.as_bytes());
        hmac::Mac::update(&mut mac, b"\0");
        hmac::Mac::update(&mut mac, &digest);
        Some(mac)
    }

    /// The keyed checksum of a file whose hash is `hash`
    /// ([`CHECKSUM_MAC_ALGO`]); `None` for an algorithm jet does not know.
    pub fn seal(&self, hash: &FileHash) -> Option<FileHash> {
        let mac = self.keyed(hash)?;
        Some(FileHash {
            algo: CHECKSUM_MAC_ALGO.to_string(),
            value: B64.encode(hmac::Mac::finalize(mac).into_bytes()),
        })
    }

    /// Whether `given` (a [`CHECKSUM_MAC_ALGO`] checksum) is the keyed
    /// checksum of the file whose hash is `ours` (compared in constant
    /// time).
    pub fn verify(&self, given: &FileHash, ours: &FileHash) -> bool {
        let Ok(tag) = B64.decode(given.value.trim()) else {
            return false;
        };
        given.algo == CHECKSUM_MAC_ALGO
            && self
                .keyed(ours)
                .is_some_and(|mac| hmac::Mac::verify_slice(mac, &tag).is_ok())
    }
}

/// An XEP-0300 `<hash algo>` value as sent (base64 text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    /// The algorithm name as sent.
    pub algo: String,
    /// The base64 text as sent (trimmed).
    pub value: String,
}

impl FileHash {
    /// The hash of `data` in one go.
    pub fn of(algo: HashAlgo, data: &[u8]) -> Self {
        let mut h = Hasher::new(algo);
        h.update(data);
        h.finish()
    }

    /// Parses `ALGO:BASE64` as given on the command line (`sha-256:47DEQp...`).
    pub fn parse_cli(s: &str) -> Result<Self, ElementError> {
        let (algo, value) = s.split_once(':').ok_or_else(|| ElementError::Invalid {
            element: "hash",
            message: format!("{s:?} is not ALGO:BASE64 (e.g. sha-256:47DEQpj8...)"),
        })?;
        let h = FileHash {
            algo: algo.to_string(),
            value: value.to_string(),
        };
        h.digest_bytes()?;
        Ok(h)
    }

    /// The algorithm, when we support it.
    pub fn algorithm(&self) -> Option<HashAlgo> {
        HashAlgo::from_name(&self.algo)
    }

    /// The digest bytes. Accepts base64 of the digest, and base64 of the
    /// lowercase hex digest (Libervia's quirk).
    pub fn digest_bytes(&self) -> Result<Vec<u8>, ElementError> {
        let algo = self.algorithm().ok_or_else(|| ElementError::Invalid {
            element: "hash",
            message: format!("unsupported hash algorithm {:?}", self.algo),
        })?;
        let bad = |m: &str| ElementError::Invalid {
            element: "hash",
            message: m.to_string(),
        };
        let raw = B64
            .decode(self.value.trim())
            .map_err(|_| bad("hash value is not base64"))?;
        if raw.len() == algo.digest_len() {
            return Ok(raw);
        }
        if raw.len() == 2 * algo.digest_len() && raw.iter().all(u8::is_ascii_hexdigit) {
            let text = std::str::from_utf8(&raw).map_err(|_| bad("hash is not hex"))?;
            let mut out = Vec::with_capacity(algo.digest_len());
            for i in (0..text.len()).step_by(2) {
                out.push(u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| bad("bad hex"))?);
            }
            return Ok(out);
        }
        Err(bad(&format!(
            "a {} digest has {} bytes, this one {}",
            algo.name(),
            algo.digest_len(),
            raw.len()
        )))
    }

    /// The same hash written as Libervia 0.9 reads it: base64 of the
    /// lowercase **hex** digest (its XEP-0300 parser decodes the base64 as
    /// UTF-8 text and fails on a raw digest).
    pub fn to_hex_in_base64(&self) -> Result<FileHash, ElementError> {
        let hex: String = self
            .digest_bytes()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(FileHash {
            algo: self.algo.clone(),
            value: B64.encode(hex.as_bytes()),
        })
    }

    /// Whether `self` and `other` are the same algorithm and digest.
    pub fn matches(&self, other: &FileHash) -> bool {
        match (self.algorithm(), other.algorithm()) {
            (Some(a), Some(b)) if a == b => match (self.digest_bytes(), other.digest_bytes()) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            },
            _ => false,
        }
    }

    fn to_element(&self) -> Element {
        Element::builder("hash", ns::HASHES)
            .a("algo", self.algo.as_str())
            .append(self.value.as_str())
            .build()
    }
}

/// XEP-0234 `<range offset length>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// First byte.
    pub offset: u64,
    /// Bytes from `offset`, or to the end.
    pub length: Option<u64>,
}

/// The `<file/>` of a file-transfer description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileDesc {
    /// File name (untrusted: see [`sanitize_file_name`]).
    pub name: Option<String>,
    /// Size in bytes of the plaintext.
    pub size: Option<u64>,
    /// MIME type.
    pub media_type: Option<String>,
    /// Last modification, as sent (XEP-0082 date-time).
    pub date: Option<String>,
    /// Human description.
    pub desc: Option<String>,
    /// Hashes of the whole file.
    pub hashes: Vec<FileHash>,
    /// `<hash-used algo>`: the sender will send a checksum with this algorithm.
    pub hash_used: Vec<String>,
    /// Requested or offered range; `Some(Range::default())` is an empty
    /// `<range/>` (ranged transfers supported).
    pub range: Option<Range>,
}

impl FileDesc {
    /// A file with a name and size.
    pub fn named(name: &str, size: u64) -> Self {
        FileDesc {
            name: Some(name.to_string()),
            size: Some(size),
            ..Default::default()
        }
    }

    /// Parses a `<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'>`.
    pub fn from_description(desc: &Element) -> Result<Self, ElementError> {
        if !desc.is("description", ns::JINGLE_FT) {
            return Err(ElementError::WrongElement {
                expected: format!("{{{}}}description", ns::JINGLE_FT),
                got: format!("{{{}}}{}", desc.ns(), desc.name()),
            });
        }
        let file = desc
            .get_child("file", ns::JINGLE_FT)
            .ok_or(ElementError::MissingChild {
                element: "description",
                child: "<file/>",
            })?;
        Self::from_file(file)
    }

    /// Parses a `<file/>` (in the file-transfer namespace).
    pub fn from_file(file: &Element) -> Result<Self, ElementError> {
        let mut out = FileDesc::default();
        let text = |e: &Element| {
            let t = e.text();
            let t = t.trim();
            (!t.is_empty()).then(|| t.to_string())
        };
        for child in file.children() {
            match (child.ns().as_str(), child.name()) {
                (ns::JINGLE_FT, "name") => out.name = text(child),
                (ns::JINGLE_FT, "size") => {
                    let t = child.text();
                    out.size = Some(t.trim().parse().map_err(|_| ElementError::Invalid {
                        element: "size",
                        message: format!("{:?} is not a byte count", t.trim()),
                    })?)
                }
                (ns::JINGLE_FT, "media-type") | (ns::JINGLE_FT, "mediaType") => {
                    out.media_type = text(child)
                }
                (ns::JINGLE_FT, "date") => out.date = text(child),
                (ns::JINGLE_FT, "desc") => out.desc = text(child),
                (ns::JINGLE_FT, "range") => {
                    let num = |a: &'static str| -> Result<Option<u64>, ElementError> {
                        child
                            .attr(a)
                            .map(|v| {
                                v.trim().parse().map_err(|_| ElementError::Invalid {
                                    element: "range",
                                    message: format!("{a}={v:?} is not a number"),
                                })
                            })
                            .transpose()
                    };
                    out.range = Some(Range {
                        offset: num("offset")?.unwrap_or(0),
                        length: num("length")?,
                    });
                }
                (ns::HASHES, "hash") => out.hashes.push(FileHash {
                    algo: child
                        .attr("algo")
                        .ok_or(ElementError::MissingAttribute {
                            element: "hash",
                            attribute: "algo",
                        })?
                        .to_string(),
                    value: child.text().trim().to_string(),
                }),
                (ns::HASHES, "hash-used") => {
                    if let Some(a) = child.attr("algo") {
                        out.hash_used.push(a.to_string())
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Serializes as `<file/>`.
    pub fn to_file(&self) -> Element {
        let mut b = Element::builder("file", ns::JINGLE_FT);
        let leaf = |name: &str, v: &str| Element::builder(name, ns::JINGLE_FT).append(v).build();
        if let Some(d) = &self.date {
            b = b.append(leaf("date", d));
        }
        // Libervia wants <desc/> present.
        b = b.append(leaf("desc", self.desc.as_deref().unwrap_or("")));
        if let Some(m) = &self.media_type {
            b = b.append(leaf("media-type", m));
        }
        if let Some(n) = &self.name {
            b = b.append(leaf("name", n));
        }
        if let Some(r) = &self.range {
            let mut rb = Element::builder("range", ns::JINGLE_FT);
            if r.offset != 0 {
                rb = rb.a("offset", r.offset.to_string());
            }
            if let Some(l) = r.length {
                rb = rb.a("length", l.to_string());
            }
            b = b.append(rb.build());
        }
        if let Some(s) = self.size {
            b = b.append(leaf("size", &s.to_string()));
        }
        for h in &self.hashes {
            b = b.append(h.to_element());
        }
        for a in &self.hash_used {
            b = b.append(
                Element::builder("hash-used", ns::HASHES)
                    .a("algo", a.as_str())
                    .build(),
            );
        }
        b.build()
    }

    /// Serializes as `<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file/></description>`.
    pub fn to_description(&self) -> Element {
        Element::builder("description", ns::JINGLE_FT)
            .append(self.to_file())
            .build()
    }

    /// The strongest hash we can verify, if any.
    pub fn best_hash(&self) -> Option<&FileHash> {
        self.hashes
            .iter()
            .filter(|h| h.algorithm().is_some())
            .max_by_key(|h| h.algorithm().map(HashAlgo::strength))
    }
}

/// `<checksum xmlns=ft creator name><file><hash/></file></checksum>`, sent in
/// session-info after the transfer.
pub fn checksum_element(creator: &str, content_name: &str, hash: &FileHash) -> Element {
    Element::builder("checksum", ns::JINGLE_FT)
        .a("creator", creator)
        .a("name", content_name)
        .append(
            Element::builder("file", ns::JINGLE_FT)
                .append(hash.to_element())
                .build(),
        )
        .build()
}

/// Reads the hashes of a `<checksum/>` session-info payload.
pub fn parse_checksum(el: &Element) -> Result<Vec<FileHash>, ElementError> {
    if !el.is("checksum", ns::JINGLE_FT) {
        return Err(ElementError::WrongElement {
            expected: "checksum".into(),
            got: el.name().into(),
        });
    }
    let file = el
        .get_child("file", ns::JINGLE_FT)
        .ok_or(ElementError::MissingChild {
            element: "checksum",
            child: "<file/>",
        })?;
    Ok(FileDesc::from_file(file)?.hashes)
}

/// `<received xmlns=ft creator name/>`, sent by the receiver in session-info.
pub fn received_element(creator: &str, content_name: &str) -> Element {
    Element::builder("received", ns::JINGLE_FT)
        .a("creator", creator)
        .a("name", content_name)
        .build()
}

/// Turns a peer-supplied file name into a safe single path component.
///
/// Keeps only the last component of `/` or `\` separated paths; refuses names
/// that are empty, `.`, `..`, contain NUL or other control characters or
/// Unicode format characters (bidi overrides such as U+202E that make
/// `exe.txt` of `txt.exe`, zero-width spaces, soft hyphens, line
/// separators...), end in jet's own partial-file suffixes (`.jet-part`,
/// `.jet-part.state`), or are longer than 255 bytes. Renames what would be
/// hidden or special: a leading dot becomes `_` (`.bashrc` → `_bashrc`), a
/// Windows device name (`CON`, `nul.txt`, `COM1`...) gets a `_` in front.
/// Never returns anything that could leave the target directory.
pub fn sanitize_file_name(name: &str) -> Result<String, ElementError> {
    let bad = |m: String| ElementError::Invalid {
        element: "name",
        message: m,
    };
    if name.chars().any(|c| c.is_control()) {
        return Err(bad(format!(
            "file name {name:?} contains control characters"
        )));
    }
    if let Some(c) = name.chars().find(|&c| is_format_char(c)) {
        return Err(bad(format!(
            "file name {name:?} contains the invisible or direction-changing character U+{:04X}",
            c as u32
        )));
    }
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if last.is_empty() || last == "." || last == ".." {
        return Err(bad(format!(
            "file name {name:?} has no usable last component"
        )));
    }
    let lower = last.to_ascii_lowercase();
    if [".jet-part", ".jet-part.state", ".jet-part.state.tmp"]
        .iter()
        .any(|s| lower.ends_with(s))
    {
        return Err(bad(format!(
            "file name {name:?} ends like jet's partial files"
        )));
    }
    let mut safe = match last.trim_start_matches('.') {
        "" => return Err(bad(format!("file name {name:?} is only dots"))),
        rest if rest.len() < last.len() => format!("_{rest}"),
        _ => last.to_string(),
    };
    if is_windows_device(&safe) {
        safe.insert(0, '_');
    }
    if safe.len() > 255 {
        return Err(bad("file name longer than 255 bytes".into()));
    }
    Ok(safe)
}

/// Unicode format (Cf), line and paragraph separators: invisible characters
/// that change how a name reads (bidi controls, zero-width characters).
fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891
        | 0x08E2 | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064
        | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD
        | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001
        | 0xE0020..=0xE007F)
}

/// `CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9` (also with an
/// extension, in any case, with trailing dots or spaces): names Windows
/// opens as devices.
fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default();
    let stem = stem.trim_end_matches([' ', '.']).to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ElementExt;

    #[test]
    fn a_keyed_checksum_is_no_fingerprint_and_needs_the_secret() {
        let ts = crate::secret::TransportSecret::new(vec![7; 16], vec![3; 12]).unwrap();
        let other = crate::secret::TransportSecret::new(vec![7; 16], vec![4; 12]).unwrap();
        let (k, k2) = (ChecksumKey::derive(&ts), ChecksumKey::derive(&other));
        let file = FileHash::of(HashAlgo::Sha256, b"the file");
        let sealed = k.seal(&file).unwrap();
        assert_eq!(sealed.algo, CHECKSUM_MAC_ALGO);
        assert_ne!(sealed.value, file.value, "not the plain hash");
        assert_ne!(
            k.seal(&file),
            k2.seal(&file),
            "another session, another value"
        );
        assert!(k.verify(&sealed, &file));
        assert!(!k2.verify(&sealed, &file), "without this session's secret");
        assert!(!k.verify(&sealed, &FileHash::of(HashAlgo::Sha256, b"another file")));
        assert!(!k.verify(&file, &file), "a plain hash is not a keyed one");
        let mut cut = sealed.clone();
        cut.value.truncate(8);
        assert!(!k.verify(&cut, &file));
        assert_eq!(format!("{k:?}"), "ChecksumKey(..)");
    }

    const LISTING1_FILE: &str = "<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file>\
        <date>1969-07-21T02:56:15Z</date>\
        <desc>This is a test. If this were a real file...</desc>\
        <media-type>text/plain</media-type><name>test.txt</name><range/><size>6144</size>\
        <hash xmlns='urn:xmpp:hashes:2' algo='sha-1'>w0mcJylzCn+AfvuGdqkty2+KP48=</hash>\
        </file></description>";

    #[test]
    fn parses_listing_1_and_round_trips() {
        let el: Element = LISTING1_FILE.parse().unwrap();
        let d = FileDesc::from_description(&el).unwrap();
        assert_eq!(d.name.as_deref(), Some("test.txt"));
        assert_eq!(d.size, Some(6144));
        assert_eq!(d.media_type.as_deref(), Some("text/plain"));
        assert_eq!(d.date.as_deref(), Some("1969-07-21T02:56:15Z"));
        assert_eq!(d.range, Some(Range::default()));
        assert_eq!(d.hashes.len(), 1);
        assert_eq!(d.best_hash().unwrap().algorithm(), Some(HashAlgo::Sha1));
        assert_eq!(d.hashes[0].digest_bytes().unwrap().len(), 20);
        let again = FileDesc::from_description(&d.to_description()).unwrap();
        assert_eq!(again, d);
    }

    #[test]
    fn parses_range_offset_and_hash_used_and_media_type_variant() {
        let el: Element = "<file xmlns='urn:xmpp:jingle:apps:file-transfer:5'>\
            <range offset='270336' length='10'/><mediaType>image/png</mediaType>\
            <hash-used xmlns='urn:xmpp:hashes:2' algo='sha-256'/></file>"
            .parse()
            .unwrap();
        let d = FileDesc::from_file(&el).unwrap();
        assert_eq!(
            d.range,
            Some(Range {
                offset: 270336,
                length: Some(10)
            })
        );
        assert_eq!(d.media_type.as_deref(), Some("image/png"));
        assert_eq!(d.hash_used, vec!["sha-256".to_string()]);
        let s = d.to_file().to_xml_string();
        assert!(
            s.contains("offset=\"270336\"") || s.contains("offset='270336'"),
            "{s}"
        );
    }

    #[test]
    fn bad_size_is_an_error() {
        let el: Element =
            "<file xmlns='urn:xmpp:jingle:apps:file-transfer:5'><size>-1</size></file>"
                .parse()
                .unwrap();
        assert!(FileDesc::from_file(&el).is_err());
    }

    #[test]
    fn hex_in_base64_form_round_trips() {
        let h = FileHash::of(HashAlgo::Sha256, b"libervia");
        let q = h.to_hex_in_base64().unwrap();
        assert_ne!(q.value, h.value);
        let text = String::from_utf8(B64.decode(&q.value).unwrap()).unwrap();
        assert_eq!(text.len(), 64);
        assert!(text
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(q.matches(&h));
    }

    #[test]
    fn hashes_accept_hex_quirk_and_compare() {
        let h = FileHash::of(HashAlgo::Sha256, b"abc");
        let raw = h.digest_bytes().unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let quirk = FileHash {
            algo: "sha-256".into(),
            value: B64.encode(hex.as_bytes()),
        };
        assert!(h.matches(&quirk));
        let other = FileHash::of(HashAlgo::Sha256, b"abd");
        assert!(!h.matches(&other));
        assert!(!h.matches(&FileHash::of(HashAlgo::Sha1, b"abc")));
        assert!(FileHash::parse_cli("sha-256:nope!").is_err());
        assert!(FileHash::parse_cli(&format!("sha-256:{}", h.value)).is_ok());
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(h.value, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    }

    #[test]
    fn checksum_round_trip() {
        let h = FileHash::of(HashAlgo::Sha256, b"x");
        let el = checksum_element("initiator", "a-file-offer", &h);
        assert_eq!(parse_checksum(&el).unwrap(), vec![h]);
        let r = received_element("initiator", "a-file-offer");
        assert_eq!(r.attr("name"), Some("a-file-offer"));
    }

    #[test]
    fn file_names_are_sanitized() {
        assert_eq!(sanitize_file_name("test.txt").unwrap(), "test.txt");
        assert_eq!(sanitize_file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(sanitize_file_name("/etc/shadow").unwrap(), "shadow");
        assert_eq!(sanitize_file_name("..\\..\\boot.ini").unwrap(), "boot.ini");
        for bad in ["", ".", "..", "a/..", "x\0y", "dir/", "a\nb"] {
            assert!(sanitize_file_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(sanitize_file_name(&"a".repeat(300)).is_err());
    }

    /// Issue 15 item 6: hidden, special, invisible and jet's own names.
    #[test]
    fn file_names_that_hide_or_mislead_are_renamed_or_refused() {
        let ok = |n: &str| sanitize_file_name(n).unwrap();
        assert_eq!(ok(".bashrc"), "_bashrc");
        assert_eq!(ok("../.ssh/..authorized_keys"), "_authorized_keys");
        assert_eq!(ok("CON"), "_CON");
        assert_eq!(ok("nul.txt"), "_nul.txt");
        assert_eq!(ok("Com1.tar.gz"), "_Com1.tar.gz");
        assert_eq!(ok("lpt9"), "_lpt9");
        assert_eq!(ok("console.txt"), "console.txt");
        assert_eq!(ok("com10"), "com10");
        assert_eq!(ok("é.txt"), "é.txt");
        for bad in [
            "invoice\u{202E}fdp.exe",
            "a\u{200B}b",
            "\u{2066}x\u{2069}",
            "soft\u{00AD}hyphen",
            "bom\u{FEFF}",
            "line\u{2028}sep",
            "x.bin.jet-part",
            "x.bin.JET-PART",
            "x.bin.jet-part.state",
            "...",
        ] {
            assert!(sanitize_file_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
