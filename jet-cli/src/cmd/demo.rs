//! `jet demo`: Romeo sends Juliet a file, JET-encrypted, in one process.
//!
//! Both parties run the real session driver, cipher registry, envelope and
//! transports; only the XMPP server is replaced by the in-memory router
//! (`jet_core::memory`). S5B runs over real loopback sockets; IBB runs over
//! the router. Exit status 0 only when the received file's SHA-256 matches.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use jet_core::driver::{Driver, DriverConfig, Incoming};
use jet_core::envelope::EnvelopeBackend;
use jet_core::ft::{FileHash, HashAlgo};
use jet_core::ft_app::{
    FileHost, FileOffer, FileReceiver, FileRequest, LocalFile, ProgressFn, ReceivePolicy,
};
use jet_core::jid::FullJid;
use jet_core::memory::MemoryRouter;
use jet_core::minidom::Element;
use jet_core::session::{Acceptor, Initiator, JetConfig};
use jet_core::transport::TransportAdapter;
use jet_core::xml::ElementExt;
use jet_transports::{IbbConfig, IbbTransport, S5bConfig, S5bTransport};

use crate::progress::Progress;

const ROMEO: &str = "romeo@montague.lit/orchard";
const JULIET: &str = "juliet@capulet.lit/balcony";

/// Which transport the demo uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportChoice {
    /// SOCKS5 Bytestreams over loopback, falling back to IBB.
    Auto,
    /// SOCKS5 Bytestreams only (XEP-0260).
    S5b,
    /// In-Band Bytestreams only (XEP-0261), through the stanza router.
    Ibb,
}

/// Which envelope carries the transport secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvelopeChoice {
    /// JET-OMEMO (XEP-0396): Romeo and Juliet each get an OMEMO 0.3 device
    /// (in memory), publish bundles in an in-memory directory, and the key
    /// travels ratchet-encrypted, as between real clients.
    Omemo,
    /// The XEP-0391 stub: base64 of the secret, NO security (demo and tests).
    Stub,
}

/// Romeo's and Juliet's envelopes.
async fn demo_envelopes(
    choice: EnvelopeChoice,
) -> Result<(Arc<dyn EnvelopeBackend>, Arc<dyn EnvelopeBackend>)> {
    use jet_envelopes::omemo::{InMemoryStore, MemoryDirectory, OmemoEnvelope};
    match choice {
        EnvelopeChoice::Stub => {
            let stub: Arc<dyn EnvelopeBackend> = Arc::new(jet_envelopes::stub::StubEnvelope::new());
            Ok((stub.clone(), stub))
        }
        EnvelopeChoice::Omemo => {
            let bare = |j: &str| -> Result<jet_core::jid::BareJid> {
                Ok(j.parse::<jet_core::jid::FullJid>()?.to_bare())
            };
            let directory = MemoryDirectory::new(bare(ROMEO)?);
            let device = |jid: &str, id: u32| -> Result<_> {
                Ok(Arc::new(OmemoEnvelope::new(
                    InMemoryStore::generate(id)?,
                    bare(jid)?,
                    Arc::new(directory.as_account(bare(jid)?)),
                )))
            };
            let romeo = device(ROMEO, 1001)?;
            let juliet = device(JULIET, 2002)?;
            romeo.publish().await?;
            juliet.publish().await?;
            Ok((romeo, juliet))
        }
    }
}

/// Arguments of `jet demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// File to send (default: --size random bytes).
    pub file: Option<PathBuf>,
    /// Transport.
    #[arg(long, value_enum, default_value_t = TransportChoice::Auto)]
    pub transport: TransportChoice,
    /// Envelope carrying the transport secret.
    #[arg(long, value_enum, default_value_t = EnvelopeChoice::Omemo)]
    pub envelope: EnvelopeChoice,
    /// Cipher URN (see `jet ciphers`); with or without the `:0` suffix.
    #[arg(long, default_value = jet_core::ns::CIPHER_AES_256_GCM)]
    pub cipher: String,
    /// Print every stanza (IBB data is summarized).
    #[arg(long)]
    pub show_stanzas: bool,
    /// Size of the random file when no FILE is given (bytes; k/M/G suffixes).
    #[arg(long, default_value = "4M", value_parser = parse_size)]
    pub size: u64,
    /// Juliet requests the file from Romeo (XEP-0391 §4.2) instead of Romeo offering it.
    #[arg(long)]
    pub request: bool,
    /// Cut the first transfer after N bytes of ciphertext, then resume with a
    /// ranged request and a fresh transport secret (XEP-0391 §4.3).
    #[arg(long, value_parser = parse_size)]
    pub interrupt_at: Option<u64>,
    /// Where Juliet saves the file (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Parses `123`, `64k`, `4M`, `1G` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 4096, 64k, 4M, 1G)"))
}

/// Wraps every transport so that its streams break after `limit` written
/// bytes (`jet demo --interrupt-at`, and the CLI's resume test hook).
pub(crate) fn cut_after(
    transports: Vec<Arc<dyn TransportAdapter>>,
    limit: u64,
) -> Vec<Arc<dyn TransportAdapter>> {
    crate::cmd::hooks::Faults {
        cut_after: Some(limit),
        ..Default::default()
    }
    .wrap(transports)
}

fn transports(choice: TransportChoice) -> Vec<Arc<dyn TransportAdapter>> {
    let s5b: Arc<dyn TransportAdapter> = Arc::new(S5bTransport::new(S5bConfig {
        direct_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        discover_proxy: false,
        ..S5bConfig::default()
    }));
    let ibb: Arc<dyn TransportAdapter> = Arc::new(IbbTransport::new(IbbConfig {
        block_size: 32 * 1024,
        ..IbbConfig::default()
    }));
    match choice {
        TransportChoice::Auto => vec![s5b, ibb],
        TransportChoice::S5b => vec![s5b],
        TransportChoice::Ibb => vec![ibb],
    }
}

/// Prints stanzas as the router delivers them, IBB data summarized.
fn stanza_printer() -> jet_core::memory::Tap {
    let ibb_blocks = Arc::new(AtomicU64::new(0));
    Arc::new(move |from: &FullJid, stanza: &Element| {
        let who = if from.to_string() == ROMEO {
            "Romeo → Juliet"
        } else {
            "Juliet → Romeo"
        };
        let data = stanza.children().find(|c| c.is("data", jet_core::ns::IBB));
        if let Some(d) = data {
            let n = ibb_blocks.fetch_add(1, Ordering::Relaxed);
            if n < 2 || n.is_multiple_of(1000) {
                eprintln!(
                    "{who}: <iq type='set'><data xmlns='{}' seq='{}'>… {} base64 chars …</data></iq>  (IBB block {n}; further blocks summarized)",
                    jet_core::ns::IBB,
                    d.attr("seq").unwrap_or("?"),
                    d.text().len()
                );
            }
            return;
        }
        if stanza.attr("type") == Some("result")
            && stanza.children().next().is_none()
            && ibb_blocks.load(Ordering::Relaxed) > 2
        {
            return; // the acks of IBB blocks
        }
        eprintln!("{who}:\n  {}\n", stanza.to_xml_string());
    })
}

async fn make_source(args: &DemoArgs, tmp: &Path) -> Result<PathBuf> {
    if let Some(f) = &args.file {
        return Ok(f.clone());
    }
    use tokio::io::AsyncWriteExt;
    let path = tmp.join("romeo-to-juliet.bin");
    // Random content, so that nothing compresses or repeats; written in
    // fixed-size pieces so that memory stays flat whatever the size.
    const PIECE: usize = 1 << 20;
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await?);
    let mut piece = vec![0u8; PIECE];
    let mut left = args.size;
    while left > 0 {
        let n = left.min(PIECE as u64) as usize;
        getrandom::fill(&mut piece[..n]).map_err(|e| anyhow!("random bytes: {e}"))?;
        file.write_all(&piece[..n]).await?;
        left -= n as u64;
    }
    file.flush().await?;
    Ok(path)
}

struct Party {
    driver: Driver,
    incoming: tokio::sync::mpsc::UnboundedReceiver<Incoming>,
}

fn party(
    router: &MemoryRouter,
    jid: &str,
    jet: JetConfig,
    transports: Vec<Arc<dyn TransportAdapter>>,
) -> Party {
    let channel = router.connect(jid.parse().expect("demo JID"));
    let (driver, incoming) = Driver::start(channel, jet, transports, DriverConfig::default());
    Party { driver, incoming }
}

/// Runs one session: `initiator` starts `app_i`, the other side accepts the
/// first incoming session with `app_r`. Returns both results.
async fn one_session<I: Initiator, R: Acceptor>(
    initiator: &Party,
    responder: &mut Party,
    peer: &str,
    app_i: Arc<I>,
    app_r: Arc<R>,
) -> (
    Result<I::Output, jet_core::Error>,
    Result<R::Output, jet_core::Error>,
) {
    let peer: FullJid = peer.parse().expect("demo JID");
    let accept = async {
        match tokio::time::timeout(Duration::from_secs(30), responder.incoming.recv()).await {
            Ok(Some(inc)) => inc.accept(app_r).await,
            _ => Err(jet_core::Error::Timeout("the incoming session".into())),
        }
    };
    tokio::join!(initiator.driver.initiate(peer, app_i), accept)
}

/// `jet demo`.
pub async fn run(args: DemoArgs) -> Result<()> {
    let registry = crate::backends::registry();
    let suite = crate::account::cipher_by_name(&registry, &args.cipher)?;
    let (romeo_envelope, juliet_envelope) = demo_envelopes(args.envelope).await?;
    let tmp = tempfile::Builder::new().prefix("jet-demo-").tempdir()?;
    let out = match &args.out {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => tmp.path().join("juliet"),
    };
    std::fs::create_dir_all(&out)?;
    let source = make_source(&args, tmp.path()).await?;
    let local = LocalFile::describe(&source)
        .await
        .with_context(|| format!("reading {}", source.display()))?;
    let size = local.desc.size.unwrap_or(0);
    let want = local.desc.hashes[0].clone();

    eprintln!(
        "jet demo: Romeo ({ROMEO}) → Juliet ({JULIET}), {} bytes of {}",
        size,
        local.desc.name.as_deref().unwrap_or("?")
    );
    eprintln!(
        "  cipher {} · envelope {}{} · transport {}",
        suite.urn(),
        romeo_envelope.envelope_type(),
        if romeo_envelope.is_secure() {
            ""
        } else {
            " (stub: NO security, demo only)"
        },
        clap::ValueEnum::to_possible_value(&args.transport)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    );

    let router = MemoryRouter::new();
    if args.show_stanzas {
        router.set_tap(stanza_printer());
    }
    // The initiator offers its preferred suite; the demo's choice goes first.
    let mut suites: Vec<_> = vec![suite];
    suites.extend(registry.iter().filter(|s| s.urn() != suite.urn()));
    let jet_romeo = JetConfig::new(suites.clone(), vec![romeo_envelope]);
    let jet_juliet = JetConfig::new(suites, vec![juliet_envelope]);
    let first_transports = match args.interrupt_at {
        Some(limit) => cut_after(transports(args.transport), limit),
        None => transports(args.transport),
    };
    let mut romeo = party(&router, ROMEO, jet_romeo.clone(), first_transports.clone());
    let mut juliet = party(&router, JULIET, jet_juliet.clone(), first_transports);

    let started = Instant::now();
    let progress = Progress::new(size, "Juliet receives");
    let pfn: ProgressFn = progress.callback();
    let received_path;
    if args.request {
        // Juliet asks Romeo for the file by its hash (XEP-0391 §4.2).
        let req = Arc::new(FileRequest::new(
            out.clone(),
            want.clone(),
            local.desc.name.clone(),
            Some(pfn.clone()),
        )?);
        let host = Arc::new(FileHost::new(vec![local.clone()], None));
        let (rj, rr) = one_session(&juliet, &mut romeo, ROMEO, req, host).await;
        report_session("Juliet (requester)", &rj);
        report_session("Romeo (host)", &rr);
        received_path = rj.ok().map(|r| r.path);
    } else {
        let offer = Arc::new(FileOffer::new(local.clone(), None));
        let recv = Arc::new(FileReceiver::new(
            out.clone(),
            ReceivePolicy::default(),
            Some(pfn.clone()),
        ));
        let (rr, rj) = one_session(&romeo, &mut juliet, JULIET, offer, recv).await;
        report_session("Romeo (sender)", &rr);
        report_session("Juliet (receiver)", &rj);
        received_path = rj.ok().map(|r| r.path);
    }
    progress.finish();

    let received_path = match (received_path, args.interrupt_at) {
        (Some(p), _) => p,
        (None, Some(limit)) => {
            let name = local.desc.name.clone().unwrap_or_default();
            let partial = jet_core::ft_fs::partial_path(&out, &name);
            let kept = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "\nThe connection was cut after {limit} bytes of ciphertext. Juliet keeps {kept} authenticated bytes{}.",
                if kept == 0 && matches!(suite.framing(), jet_core::cipher::Framing::SingleMessage { .. }) {
                    " (whole-stream GCM authenticates nothing before its final tag, so the resume starts at 0; the chunked cipher resumes at a chunk boundary)"
                } else {
                    ""
                }
            );
            eprintln!("Juliet requests the rest with <range offset='{kept}'/> in a new session with a fresh transport secret.\n");
            // New drivers on new connections, without the cut.
            router.disconnect(&ROMEO.parse()?);
            router.disconnect(&JULIET.parse()?);
            let mut romeo = party(
                &router,
                ROMEO,
                jet_romeo.clone(),
                transports(args.transport),
            );
            let juliet = party(
                &router,
                JULIET,
                jet_juliet.clone(),
                transports(args.transport),
            );
            let progress = Progress::new(size - kept, "Juliet resumes");
            let req = Arc::new(FileRequest::new(
                out.clone(),
                want.clone(),
                local.desc.name.clone(),
                Some(progress.callback()),
            )?);
            let host = Arc::new(FileHost::new(vec![local.clone()], None));
            let (rj, rr) = one_session(&juliet, &mut romeo, ROMEO, req, host).await;
            progress.finish();
            report_session("Juliet (resume request)", &rj);
            report_session("Romeo (host)", &rr);
            rj.ok()
                .map(|r| r.path)
                .ok_or_else(|| anyhow!("the resumed transfer failed"))?
        }
        (None, None) => bail!("the transfer failed; no file was written under its final name"),
    };

    let elapsed = started.elapsed();
    let got = hash_file(&received_path).await?;
    let ok = got.matches(&want);
    eprintln!(
        "\n{} bytes in {:.2?} ({:.1} MiB/s, including setup)",
        size,
        elapsed,
        size as f64 / (1 << 20) as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!("sent     sha-256 {}", want.value);
    // Without --out the file lies in a temporary directory removed when
    // the demo ends: no path that no longer exists.
    let where_ = match &args.out {
        Some(_) => received_path.display().to_string(),
        None => "(in a temporary directory, removed now; keep the file with --out DIR)".into(),
    };
    println!("received sha-256 {}  {where_}", got.value);
    if !ok {
        bail!("hash mismatch: the received file is NOT the sent file");
    }
    println!("hash match: OK");
    Ok(())
}

fn report_session<T>(who: &str, r: &Result<T, jet_core::Error>) {
    match r {
        Ok(_) => eprintln!("  {who}: session ended well"),
        Err(e) => eprintln!(
            "  {who}: session ended: {e} (reason sent: {})",
            jet_core::jingle::reason_name(&jet_core::JingleReason::jingle_reason(e))
        ),
    }
}

async fn hash_file(path: &Path) -> Result<FileHash> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = jet_core::ft::Hasher::new(HashAlgo::Sha256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("4M").unwrap(), 4 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
