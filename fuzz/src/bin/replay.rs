//! A stable-toolchain fuzz runner for jet's targets (no libFuzzer, no
//! coverage feedback): replays the seed corpus, then mutates corpus entries
//! (bit flips, byte edits, insertions, deletions, splices, dictionary
//! tokens) for a fixed time. A panic is saved under
//! `artifacts/<target>/crash-<hash>` and ends the run with status 1.
//!
//! ```text
//! cargo run --release --no-default-features --features replay --bin replay -- <target> [seconds] [corpus-dir]
//! cargo run --release --no-default-features --features replay --bin replay -- --gen-seeds <target> <dir>
//! ```
//!
//! `--gen-seeds` writes seed inputs for the envelope targets
//! (`omemo_element`, `omemo_open`, `ox_open`), made with fresh keys.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("security", jet_fuzz::security),
    ("jingle", jet_fuzz::jingle),
    ("stub_envelope", jet_fuzz::stub_envelope),
    ("s5b_element", jet_fuzz::s5b_element),
    ("socks5_server", jet_fuzz::socks5_server),
    ("ibb", jet_fuzz::ibb),
    ("file_desc", jet_fuzz::file_desc),
    ("session", jet_fuzz::session),
    ("jet_layer", jet_fuzz::jet_layer),
    ("omemo_element", jet_fuzz::omemo_element),
    ("omemo_open", jet_fuzz::omemo_open),
    ("ox_open", jet_fuzz::ox_open),
];

/// Tokens that make XML mutations likelier to stay interesting.
const DICT: &[&str] = &[
    "<",
    ">",
    "/>",
    "</",
    "='",
    "'",
    "\"",
    "&amp;",
    "&#0;",
    "&#x10FFFF;",
    "<!DOCTYPE x [<!ENTITY a 'b'>]>",
    "&a;",
    "<![CDATA[",
    "]]>",
    "xmlns='urn:xmpp:jingle:jet:0'",
    "xmlns='urn:xmpp:jingle:1'",
    "xmlns='urn:xmpp:encryption:stub:0'",
    "xmlns='urn:xmpp:jingle:apps:file-transfer:5'",
    "xmlns='urn:xmpp:jingle:transports:s5b:1'",
    "xmlns='http://jabber.org/protocol/ibb'",
    "xmlns='eu.siacs.conversations.axolotl'",
    "xmlns='urn:xmpp:openpgp:0'",
    "xmlns='urn:xmpp:jingle:jet-ox:0'",
    "header",
    "key",
    "rid",
    "prekey='true'",
    "iv",
    "bundle",
    "list",
    "device",
    "signcrypt",
    "time",
    "stamp",
    "rpad",
    "jet-secret",
    "openpgp",
    "juliet@capulet.lit",
    "romeo@montague.lit",
    "2026-11-26T12:00:00Z",
    "security",
    "content",
    "jingle",
    "transport",
    "candidate",
    "payload",
    "encrypted",
    "file",
    "name",
    "size",
    "range",
    "hash",
    "offset",
    "length",
    "cipher",
    "type",
    "sid",
    "seq",
    "cid",
    "priority",
    "port",
    "host",
    "jid",
    "action",
    "initiator",
    "creator",
    "senders",
    "session-initiate",
    "transport-replace",
    "../",
    "..\\",
    "/",
    "\\",
    "..",
    ".",
    "\0",
    "18446744073709551616",
    "-1",
    "65535",
    "65536",
    "4294967295",
    "0",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(16));
                v.drain(i..i + n);
            }
            4 | 5 => {
                let tok = DICT[rng.below(DICT.len())].as_bytes();
                let i = rng.below(v.len() + 1);
                v.splice(i..i, tok.iter().copied());
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = a + rng.below(other.len() - a + 1);
                    let i = rng.below(v.len() + 1);
                    v.splice(i..i, other[a..b].iter().copied());
                }
            }
            _ if v.len() > 1 => {
                // Duplicate a slice (repetition, deep nesting).
                let a = rng.below(v.len());
                let b = a + rng.below((v.len() - a).min(64) + 1);
                let piece = v[a..b].to_vec();
                v.splice(b..b, piece);
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v.truncate(64 * 1024);
    v
}

fn load(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    out
}

fn save_crash(target: &str, input: &[u8]) -> PathBuf {
    let mut h = DefaultHasher::new();
    input.hash(&mut h);
    let dir = PathBuf::from("artifacts").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(format!("crash-{:016x}", h.finish()));
    let _ = std::fs::write(&p, input);
    p
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(name) = args.get(1) else {
        eprintln!("usage: replay <target> [seconds] [corpus-dir]");
        eprintln!(
            "targets: {}",
            TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(" ")
        );
        std::process::exit(2);
    };
    if name == "--gen-seeds" {
        let (Some(t), Some(dir)) = (args.get(2), args.get(3)) else {
            eprintln!("usage: replay --gen-seeds <target> <dir>");
            std::process::exit(2);
        };
        if let Err(e) = jet_fuzz::gen_seeds(t, Path::new(dir)) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    let Some(&(_, target)) = TARGETS.iter().find(|t| t.0 == name) else {
        eprintln!("unknown target {name}");
        std::process::exit(2);
    };
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = args
        .get(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("seeds").join(name));
    let mut corpus = load(&dir);
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    // Quiet panics: they are reported once, with the input saved.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    let run = |input: &[u8]| catch_unwind(AssertUnwindSafe(|| target(input))).is_ok();
    let start = Instant::now();
    for c in &corpus {
        if !run(c) {
            let p = save_crash(name, c);
            eprintln!("{name}: corpus entry crashes; saved {}", p.display());
            std::process::exit(1);
        }
    }
    let seeds = corpus.len();
    let seed = std::env::var("JET_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| start.elapsed().as_nanos() as u64 | 1);
    let mut rng = Rng(seed);
    let mut execs: u64 = corpus.len() as u64;
    let deadline = Duration::from_secs(secs);
    let mut last_report = Instant::now();
    while start.elapsed() < deadline {
        let base = corpus[rng.below(corpus.len())].clone();
        let input = mutate(&mut rng, &base, &corpus);
        execs += 1;
        let deep_before = jet_fuzz::DEEP.load(std::sync::atomic::Ordering::Relaxed);
        if !run(&input) {
            let p = save_crash(name, &input);
            eprintln!("{name}: crash after {execs} execs; saved {}", p.display());
            std::process::exit(1);
        }
        // Keep mutants that got past the parser into the deep checks, to
        // mutate further (the only feedback: no coverage). Bounded pool;
        // the seeds stay.
        let deep_after = jet_fuzz::DEEP.load(std::sync::atomic::Ordering::Relaxed);
        if deep_after > deep_before && rng.below(8) == 0 {
            if corpus.len() < 4096 {
                corpus.push(input);
            } else {
                let i = seeds + rng.below(corpus.len() - seeds);
                corpus[i] = input;
            }
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "{name}: {execs} execs, {:.0} s",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    let t = start.elapsed().as_secs_f64();
    let deep = jet_fuzz::DEEP.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{name}: {execs} execs in {t:.0} s ({:.0}/s), {deep} reached the deep checks, seed {seed}, no crash",
        execs as f64 / t
    );
    if let Some(stats) = jet_fuzz::outcome_stats(name) {
        println!("{name}: {stats}");
    }
}
