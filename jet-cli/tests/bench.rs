//! `jet bench` with the built binary: the JSON table, `--suite`, and the
//! backend environment variables (each names the default row's backend).

use std::process::Command;

const JET: &str = env!("CARGO_BIN_EXE_jet");

/// `jet bench --json --no-openssl --seconds 0.001 ARGS` with `env` set; the
/// result rows.
fn bench(env: &[(&str, &str)], args: &[&str]) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(JET);
    cmd.args(["bench", "--json", "--no-openssl", "--seconds", "0.001"])
        .args(args)
        .env_remove("JET_GCM_BACKEND")
        .env_remove("JET_CHACHA_BACKEND")
        .env_remove("JET_CHUNKED_BACKEND");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run jet bench");
    assert!(
        out.status.success(),
        "jet bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    v["results"].as_array().expect("results").clone()
}

/// The backend of `suite`'s row marked `(default)`.
fn default_backend(rows: &[serde_json::Value], suite: &str) -> String {
    let backends: Vec<&str> = rows
        .iter()
        .filter(|r| r["suite"] == suite)
        .filter_map(|r| r["backend"].as_str())
        .filter(|b| b.ends_with("(default)"))
        .collect();
    assert!(!backends.is_empty(), "no default row for {suite}: {rows:?}");
    backends[0].trim_end_matches(" (default)").to_owned()
}

#[test]
fn suite_filter_keeps_only_matching_suites() {
    let rows = bench(&[], &["--suite", "chacha"]);
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["suite"], "ChaCha20-Poly1305", "{r}");
        assert!(r["gbps"].as_f64().unwrap() > 0.0, "{r}");
    }
}

#[test]
fn backend_variables_choose_the_default_backend() {
    for (var, suite, filter) in [
        ("JET_GCM_BACKEND", "AES-256-GCM", "aes-256-gcm"),
        ("JET_CHACHA_BACKEND", "ChaCha20-Poly1305", "chacha"),
        (
            "JET_CHUNKED_BACKEND",
            "AES-256-GCM chunked (STREAM)",
            "chunked",
        ),
    ] {
        let rows = bench(&[(var, "rustcrypto")], &["--suite", filter]);
        assert_eq!(default_backend(&rows, suite), "rustcrypto", "{var}");
        // Unset, a faster backend (OpenSSL or ring, both built into jet
        // by default) is the default, when the CPU allows.
        let rows = bench(&[], &["--suite", filter]);
        let dflt = default_backend(&rows, suite);
        if var != "JET_CHUNKED_BACKEND" {
            assert_eq!(dflt, "openssl", "{var} unset");
        }
        // A name that is not a built-in backend is ignored.
        let rows = bench(&[(var, "no-such-backend")], &["--suite", filter]);
        assert_eq!(default_backend(&rows, suite), dflt, "{var} bogus");
    }
}

#[test]
fn transfer_rows_measure_a_real_loopback_s5b_transfer() {
    // 1 MiB over S5B on 127.0.0.1, plain and through the chunked suite,
    // pipelined and inline; `jet bench` fails if a byte goes missing.
    let rows = bench(
        &[],
        &[
            "--transfer",
            "--transfer-size",
            "1M",
            "--transfer-runs",
            "1",
            "--suite",
            "chunked",
        ],
    );
    let transfers: Vec<_> = rows
        .iter()
        .filter(|r| r["direction"] == "transfer")
        .collect();
    let names: Vec<String> = transfers
        .iter()
        .map(|r| format!("{} / {}", r["suite"], r["backend"]))
        .collect();
    assert_eq!(transfers.len(), 3, "{names:?}");
    assert_eq!(transfers[0]["suite"], "S5B loopback, plain");
    assert!(transfers[1]["backend"]
        .as_str()
        .unwrap()
        .starts_with("pipelined, "));
    assert!(transfers[2]["backend"]
        .as_str()
        .unwrap()
        .starts_with("inline, "));
    for r in transfers {
        assert!(r["gbps"].as_f64().unwrap() > 0.0, "{r}");
    }
}
