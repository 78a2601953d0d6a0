//! `jet bench`: a quick throughput table of this machine's cipher suites
//! (and, with `--transfer`, of a loopback SOCKS5 bytestream transfer plain
//! versus encrypted). It takes a few seconds; the criterion benches in
//! `benches/` (`cargo bench -p jet-benches`) are the careful measurement.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use jet_ciphers::chacha::ChaChaBackend;
use jet_ciphers::chunked::{ChunkBackend, CHUNK_LEN};
use jet_ciphers::gcm::{AesGcmSuite, GcmBackend};
use jet_ciphers::{AES_128_GCM, AES_256_GCM, AES_256_GCM_CHUNKED, CHACHA20_POLY1305};
use jet_core::cipher::{CipherSuite, StreamDecryptor, StreamEncryptor};
use jet_core::layer::{Direction, JetStream};
use jet_core::memory::connected_pair;
use jet_core::transport::BoxedStream;
use jet_core::TransportSecret;
use jet_transports::{S5bConfig, S5bTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Arguments of `jet bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seconds spent on each measurement (fractions allowed).
    #[arg(long, default_value_t = 0.3)]
    pub seconds: f64,
    /// Also measure a loopback S5B transfer, plain and through each suite.
    #[arg(long)]
    pub transfer: bool,
    /// Bytes sent per transfer measurement (with --transfer).
    #[arg(long, default_value = "256M", value_parser = super::demo::parse_size)]
    pub transfer_size: u64,
    /// Transfer runs per row (interleaved; the median is shown).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub transfer_runs: u32,
    /// Only suites whose name contains this (case-insensitive; repeatable),
    /// e.g. `--suite chunked`.
    #[arg(long)]
    pub suite: Vec<String>,
    /// Skip `openssl speed` even if openssl is installed.
    #[arg(long)]
    pub no_openssl: bool,
}

/// Whether `suite` passes the `--suite` filters.
fn selected(filters: &[String], name: &str) -> bool {
    let name = name.to_lowercase();
    filters.is_empty() || filters.iter().any(|f| name.contains(&f.to_lowercase()))
}

/// A backend's name in the table, marked when it is the one jet uses.
fn backend_label(name: &str, preferred: bool) -> String {
    if preferred {
        format!("{name} (default)")
    } else {
        name.to_owned()
    }
}

/// One row of the table.
struct Row {
    what: String,
    backend: String,
    direction: &'static str,
    buffer: usize,
    gbps: f64,
    /// CPU cores busy on average (transfers only; Linux).
    cpu: Option<f64>,
}

/// Bytes per `update` call.
const BUFFER: usize = 64 * 1024;

fn gbps(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64().max(1e-9) / 1e9
}

/// Streams `BUFFER`-sized pieces through one encryptor for about `secs`;
/// then decrypts what was produced, as one stream, the same way.
fn measure_suite(
    enc: impl Fn() -> Box<dyn StreamEncryptor>,
    dec: impl Fn() -> Box<dyn StreamDecryptor>,
    secs: f64,
) -> Result<(f64, f64)> {
    let plain: Vec<u8> = (0..BUFFER).map(|i| (i * 31 % 251) as u8).collect();
    let budget = Duration::from_secs_f64(secs);
    let mut out = Vec::with_capacity(4 * BUFFER);

    // Encrypt: one long stream (the way a transfer uses it).
    let mut e = enc();
    let mut bytes = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..16 {
            out.clear();
            e.update(&plain, &mut out)?;
            bytes += BUFFER as u64;
        }
    }
    let enc_gbps = gbps(bytes, start.elapsed());

    // Decrypt: a 4 MiB ciphertext (a whole message, tag checked), repeated.
    let mut e = enc();
    let mut ct = Vec::with_capacity(4 << 20);
    for _ in 0..64 {
        e.update(&plain, &mut ct)?;
    }
    e.finish(&mut ct)?;
    let mut bytes = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        let mut d = dec();
        for piece in ct.chunks(BUFFER) {
            out.clear();
            d.update(piece, &mut out)?;
        }
        out.clear();
        d.finish(&mut out)?;
        bytes += 64 * BUFFER as u64;
    }
    Ok((enc_gbps, gbps(bytes, start.elapsed())))
}

fn cipher_rows(secs: f64, filters: &[String]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut push = |what: &str, backend: &str, (e, d): (f64, f64)| {
        for (direction, gbps) in [("encrypt", e), ("decrypt", d)] {
            rows.push(Row {
                what: what.to_owned(),
                backend: backend.to_owned(),
                direction,
                buffer: BUFFER,
                gbps,
                cpu: None,
            });
        }
    };
    for suite in &crate::backends::registry() {
        if !selected(filters, suite.name()) {
            continue;
        }
        let secret = TransportSecret::generate(suite)?;
        if suite.urn() == AES_256_GCM_CHUNKED.urn() {
            for &backend in ChunkBackend::all() {
                let r = measure_suite(
                    || {
                        Box::new(
                            AES_256_GCM_CHUNKED
                                .encryptor_with(&secret, 0, backend)
                                .expect("key"),
                        )
                    },
                    || {
                        Box::new(
                            AES_256_GCM_CHUNKED
                                .decryptor_with(&secret, 0, backend)
                                .expect("key"),
                        )
                    },
                    secs,
                )?;
                let name =
                    backend_label(backend.name(), backend == crate::backends::chosen().chunk);
                push(suite.name(), &name, r);
            }
        } else if let Some(gcm) = whole_stream_gcm(suite) {
            for &backend in GcmBackend::all() {
                let r = measure_suite(
                    || gcm.encryptor_with(&secret, &[], backend).expect("key"),
                    || gcm.decryptor_with(&secret, &[], backend).expect("key"),
                    secs,
                )?;
                let name = backend_label(backend.name(), backend == crate::backends::chosen().gcm);
                push(suite.name(), &name, r);
            }
        } else if suite.urn() == CHACHA20_POLY1305.urn() {
            for &backend in ChaChaBackend::all() {
                let r = measure_suite(
                    || {
                        CHACHA20_POLY1305
                            .encryptor_with(&secret, &[], backend)
                            .expect("key")
                    },
                    || {
                        CHACHA20_POLY1305
                            .decryptor_with(&secret, &[], backend)
                            .expect("key")
                    },
                    secs,
                )?;
                let name =
                    backend_label(backend.name(), backend == crate::backends::chosen().chacha);
                push(suite.name(), &name, r);
            }
        } else {
            let r = measure_suite(
                || suite.encryptor(&secret).expect("key"),
                || suite.decryptor(&secret).expect("key"),
                secs,
            )?;
            push(suite.name(), "streaming", r);
        }
    }
    Ok(rows)
}

/// The whole-stream AES-GCM suite behind `suite`, if it is one (they have
/// a backend choice, [`GcmBackend`]).
fn whole_stream_gcm(suite: &dyn CipherSuite) -> Option<&'static AesGcmSuite> {
    [&AES_128_GCM, &AES_256_GCM]
        .into_iter()
        .find(|g| g.urn() == suite.urn())
}

/// `openssl speed -evp <cipher> -bytes 65536`, in GB/s, when openssl runs.
fn openssl_speed(cipher: &str, secs: f64) -> Option<f64> {
    let secs = secs.ceil().max(1.0) as u32;
    let out = std::process::Command::new("openssl")
        .args(["speed", "-evp", cipher, "-bytes", "65536", "-seconds"])
        .arg(secs.to_string())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_openssl_speed(&String::from_utf8_lossy(&out.stdout))
}

/// The last column of the last line of `openssl speed` output, e.g.
/// `AES-256-GCM    5470814.21k` (thousands of bytes per second), in GB/s.
fn parse_openssl_speed(text: &str) -> Option<f64> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let last = line.split_whitespace().last()?;
    let kbps: f64 = last.strip_suffix('k')?.parse().ok()?;
    Some(kbps * 1000.0 / 1e9)
}

/// An established direct S5B connection on 127.0.0.1 between two parties of
/// an in-memory router: (initiator's end, responder's end).
async fn s5b_pair() -> Result<(BoxedStream, BoxedStream)> {
    let adapter = S5bTransport::new(S5bConfig {
        direct_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        discover_proxy: false,
        ..S5bConfig::default()
    });
    Ok(connected_pair(&adapter).await?)
}

/// CPU time used so far by all threads of this process (Linux).
fn process_cpu() -> Option<Duration> {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    (ns > 0).then(|| Duration::from_nanos(ns))
}

/// How one transfer was measured.
#[derive(Clone, Copy)]
struct Transfer {
    gbps: f64,
    /// Average busy cores, if known.
    cpu: Option<f64>,
}

/// Sends `size` bytes over a fresh S5B connection, through `suite` if
/// given (pipelined or inline); the sender and the receiver are separate
/// tasks.
async fn transfer(
    suite: Option<&'static dyn CipherSuite>,
    pipelined: bool,
    size: u64,
) -> Result<Transfer> {
    let (a, b) = s5b_pair().await?;
    let (mut tx, mut rx): (BoxedStream, BoxedStream) = match suite {
        None => (a, b),
        Some(suite) => {
            let secret = TransportSecret::generate(suite)?;
            let mut tx = JetStream::new(a, suite, &secret, Direction::Send)?;
            let mut rx = JetStream::new(b, suite, &secret, Direction::Receive)?;
            tx.set_pipelined(pipelined);
            rx.set_pipelined(pipelined);
            (Box::new(tx), Box::new(rx))
        }
    };
    let cpu0 = process_cpu();
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        let piece = vec![0x5au8; CHUNK_LEN];
        let mut left = size;
        while left > 0 {
            let n = left.min(piece.len() as u64) as usize;
            tx.write_all(&piece[..n]).await?;
            left -= n as u64;
        }
        tx.shutdown().await?;
        Ok::<_, std::io::Error>(())
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = rx.read(&mut buf).await.context("receiving")?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    sender.await?.context("sending")?;
    let took = start.elapsed();
    if got != size {
        return Err(anyhow!("received {got} of {size} bytes"));
    }
    let cpu = match (cpu0, process_cpu()) {
        (Some(a), Some(b)) if b > a => Some((b - a).as_secs_f64() / took.as_secs_f64()),
        _ => None,
    };
    Ok(Transfer {
        gbps: gbps(size, took),
        cpu,
    })
}

/// The run with the median throughput.
fn median(mut runs: Vec<Transfer>) -> Transfer {
    runs.sort_by(|a, b| a.gbps.total_cmp(&b.gbps));
    runs[runs.len() / 2]
}

async fn transfer_rows(size: u64, runs: u32, filters: &[String]) -> Result<Vec<Row>> {
    let suites: Vec<_> = crate::backends::registry()
        .iter()
        .filter(|s| selected(filters, s.name()))
        .collect();
    // Plain, then each suite pipelined and inline, interleaved run by run
    // so that a slow spell of the machine hits every row alike.
    let mut plain = Vec::new();
    let mut enc: Vec<[Vec<Transfer>; 2]> = vec![[Vec::new(), Vec::new()]; suites.len()];
    for _ in 0..runs {
        plain.push(transfer(None, false, size).await?);
        for (i, suite) in suites.iter().enumerate() {
            for (j, pipelined) in [true, false].into_iter().enumerate() {
                enc[i][j].push(transfer(Some(*suite), pipelined, size).await?);
            }
        }
    }
    let plain = median(plain);
    let mut rows = vec![Row {
        what: "S5B loopback, plain".into(),
        backend: "tcp".into(),
        direction: "transfer",
        buffer: CHUNK_LEN,
        gbps: plain.gbps,
        cpu: plain.cpu,
    }];
    for (suite, [piped, inline]) in suites.iter().zip(enc) {
        for (how, t) in [("pipelined", median(piped)), ("inline", median(inline))] {
            rows.push(Row {
                what: format!("S5B loopback, {}", suite.name()),
                backend: format!("{how}, {:.2}x plain", t.gbps / plain.gbps),
                direction: "transfer",
                buffer: CHUNK_LEN,
                gbps: t.gbps,
                cpu: t.cpu,
            });
        }
    }
    Ok(rows)
}

/// Runs `jet bench`.
pub async fn run(args: BenchArgs) -> Result<()> {
    if !(args.seconds > 0.0 && args.seconds <= 60.0) {
        return Err(anyhow!("--seconds must be in (0, 60]"));
    }
    let secs = args.seconds;
    let filters = args.suite.clone();
    let mut rows = tokio::task::spawn_blocking(move || cipher_rows(secs, &filters)).await??;
    if !args.no_openssl {
        for (cipher, name) in [
            ("aes-256-gcm", "AES-256-GCM"),
            ("chacha20-poly1305", "ChaCha20-Poly1305"),
        ] {
            if !selected(&args.suite, name) {
                continue;
            }
            let s = args.seconds;
            let c = cipher.to_owned();
            if let Some(g) = tokio::task::spawn_blocking(move || openssl_speed(&c, s)).await? {
                rows.push(Row {
                    what: name.into(),
                    backend: "openssl speed -evp (one-shot)".into(),
                    direction: "encrypt",
                    buffer: 65536,
                    gbps: g,
                    cpu: None,
                });
            }
        }
    }
    if args.transfer {
        rows.extend(transfer_rows(args.transfer_size, args.transfer_runs, &args.suite).await?);
    }
    if args.json {
        println!("{}", to_json(&rows));
    } else {
        println!(
            "{:<44} {:<30} {:<9} {:>7} {:>7} {:>5}",
            "suite", "backend", "direction", "buffer", "GB/s", "CPUs"
        );
        for r in &rows {
            let cpu = r.cpu.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
            println!(
                "{:<44} {:<30} {:<9} {:>7} {:>7.2} {:>5}",
                r.what, r.backend, r.direction, r.buffer, r.gbps, cpu
            );
        }
        if rows.iter().any(|r| r.cpu.is_some()) {
            println!(
                "CPUs: cores busy on average during the transfer (sender and receiver \
                 are both in this process)."
            );
        }
    }
    Ok(())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn to_json(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let cpu = r
                .cpu
                .map_or_else(String::new, |c| format!(",\"cpu_cores\":{c:.3}"));
            format!(
                "{{\"suite\":{},\"backend\":{},\"direction\":{},\"buffer\":{},\"gbps\":{:.3}{cpu}}}",
                json_str(&r.what),
                json_str(&r.backend),
                json_str(r.direction),
                r.buffer,
                r.gbps
            )
        })
        .collect();
    format!("{{\"results\":[{}]}}", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_speed_output() {
        let text = "version: 3.0.20\nThe 'numbers' are in 1000s of bytes per second processed.\n\
                    type          65536 bytes\nAES-256-GCM    5470814.21k\n";
        let g = parse_openssl_speed(text).unwrap();
        assert!((g - 5.47081421).abs() < 1e-6, "{g}");
        assert_eq!(parse_openssl_speed("no numbers here\n"), None);
    }

    #[test]
    fn json_escapes_and_lists_rows() {
        let rows = [Row {
            what: "a\"b".into(),
            backend: "ring".into(),
            direction: "encrypt",
            buffer: 65536,
            gbps: 1.5,
            cpu: None,
        }];
        assert_eq!(
            to_json(&rows),
            "{\"results\":[{\"suite\":\"a\\\"b\",\"backend\":\"ring\",\"direction\":\"encrypt\",\"buffer\":65536,\"gbps\":1.500}]}"
        );
    }

    #[test]
    fn suites_measure_and_roundtrip() {
        // Tiny budget: checks the measuring code runs every suite (and that
        // decryption of what it encrypted authenticates), not the speed.
        let rows = cipher_rows(0.001, &[]).unwrap();
        // Chunked on each chunk backend, the two whole-stream GCM suites on
        // each GCM backend, ChaCha20 on each of its backends, the rest once.
        let suites = crate::backends::registry().len() - 4
            + ChunkBackend::all().len()
            + 2 * GcmBackend::all().len()
            + ChaChaBackend::all().len();
        assert_eq!(rows.len(), 2 * suites);
        for backend in GcmBackend::all() {
            let n = rows
                .iter()
                .filter(|r| r.what == "AES-256-GCM" && r.backend.starts_with(backend.name()))
                .count();
            assert_eq!(n, 2, "AES-256-GCM on {}", backend.name());
        }
        assert!(rows.iter().all(|r| r.gbps > 0.0));
    }
}
