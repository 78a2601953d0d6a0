//! The loopback Prosody's settings, for the server tests of every crate
//! (jet-core, jet-envelopes and jet-cli include this file with `#[path]`:
//! it needs nothing but std, so it is a file rather than a crate).
//!
//! They come from the env file `scripts/test-server start` writes
//! (`$JET_TEST_SERVER_DIR/env`, by default `target/test-server/env`; the
//! same tests run against ejabberd with
//! `JET_TEST_SERVER_DIR=target/test-ejabberd`, whose env file
//! `scripts/test-ejabberd start` writes), and
//! `JET_TEST_*` variables in the environment override it. Without a server
//! the tests skip, unless `JET_REQUIRE_SERVER=1` (as `scripts/test` and CI
//! set), which makes a missing server a failure.

use std::collections::HashMap;
use std::path::PathBuf;

/// Where to reach the test server and how to log in.
#[derive(Clone)]
pub struct ProsodyEnv {
    /// Which server: `prosody` (scripts/test-server) or `ejabberd`
    /// (scripts/test-ejabberd), from `JET_TEST_SERVER_KIND`.
    pub kind: String,
    /// A second c2s address of the same server with a traffic shaper
    /// (ejabberd: Debian's 3000 B/s `c2s_shaper`), if it has one.
    pub shaped_addr: Option<String>,
    /// The XMPP domain, e.g. `jet.test`.
    pub domain: String,
    /// Its c2s address, `127.0.0.1:PORT`.
    pub addr: String,
    /// The CA certificate its TLS certificate is signed by.
    pub ca: PathBuf,
    /// The password of every test account.
    pub password: String,
    /// The SOCKS5 proxy's JID (XEP-0065).
    pub proxy: String,
    /// The SOCKS5 proxy's address, if known.
    pub proxy_addr: String,
}

/// The env file `scripts/test-server` writes.
pub fn env_file() -> PathBuf {
    match std::env::var_os("JET_TEST_SERVER_DIR") {
        Some(dir) => PathBuf::from(dir).join("env"),
        // Every crate that includes this file sits one level below the root.
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-server/env"),
    }
}

/// The server's settings, or `None` (skip) when there is none and it is not
/// required.
pub fn load() -> Option<ProsodyEnv> {
    let path = env_file();
    let mut vars: HashMap<String, String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export ").or(Some(l.trim())))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    for (k, v) in std::env::vars() {
        if k.starts_with("JET_TEST_") {
            vars.insert(k, v);
        }
    }
    let get = |k: &str| vars.get(k).cloned();
    let (Some(domain), Some(addr), Some(ca), Some(password)) = (
        get("JET_TEST_XMPP_DOMAIN"),
        get("JET_TEST_XMPP_SERVER"),
        get("JET_TEST_CA"),
        get("JET_TEST_PASSWORD"),
    ) else {
        let why = format!(
            "no XMPP test server: {} is missing and JET_TEST_XMPP_* are not set \
             (run `scripts/test-server install && scripts/test-server start`)",
            path.display()
        );
        if std::env::var("JET_REQUIRE_SERVER").as_deref() == Ok("1") {
            panic!("JET_REQUIRE_SERVER=1 but {why}");
        }
        eprintln!("skipping: {why}");
        return None;
    };
    Some(ProsodyEnv {
        kind: get("JET_TEST_SERVER_KIND").unwrap_or_else(|| "prosody".into()),
        shaped_addr: get("JET_TEST_XMPP_SERVER_SHAPED").filter(|s| !s.is_empty()),
        proxy: get("JET_TEST_PROXY").unwrap_or_else(|| format!("proxy.{domain}")),
        proxy_addr: get("JET_TEST_PROXY_ADDR").unwrap_or_default(),
        domain,
        addr,
        ca: PathBuf::from(ca),
        password,
    })
}
