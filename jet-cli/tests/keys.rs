//! `jet keys` with the built binary on stores in a temporary data directory.

use std::path::Path;
use std::process::{Command, Output};

use jet_core::jid::BareJid;
use jet_envelopes::omemo::{DeviceAddress, KeyPair, OmemoStore, SqliteStore, Trust};
use jet_envelopes::ox::{FileKeyStore, OxKeyStore, OxSecretKey};

const JET: &str = env!("CARGO_BIN_EXE_jet");

fn jet(dir: &Path, args: &[&str]) -> Output {
    Command::new(JET)
        .arg("keys")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run jet")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "jet failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn omemo_show_trust_list() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // No store yet: show without --jid is an error, with --jid creates one.
    assert!(!jet(dir, &["show"]).status.success());
    let out = ok(&jet(dir, &["show", "--jid", "romeo@jet.test"]));
    assert!(out.contains("new device created"), "{out}");
    let path = dir.join("omemo-romeo@jet.test.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let own_fpr = store.identity_key_pair().unwrap().public.fingerprint();
    assert!(
        out.contains(&format!("omemo device {}  {own_fpr}", store.device_id())),
        "{out}"
    );
    drop(store);
    // The same device afterwards (single account: --jid optional).
    let again = ok(&jet(dir, &["show"]));
    assert!(
        again.contains(&own_fpr) && !again.contains("new device"),
        "{again}"
    );

    // Juliet's device was seen (trust on first use).
    let juliet_key = KeyPair::generate().unwrap().public;
    let other_key = KeyPair::generate().unwrap().public;
    {
        let mut s = SqliteStore::open(&path).unwrap();
        s.save_remote_identity(
            &DeviceAddress::new("juliet@jet.test", 4242),
            &juliet_key,
            Trust::Undecided,
        )
        .unwrap();
    }
    let list = ok(&jet(dir, &["list", "juliet@jet.test"]));
    assert!(list.contains("omemo device 4242"), "{list}");
    assert!(list.contains(&juliet_key.fingerprint()), "{list}");
    assert!(list.contains("undecided"), "{list}");
    // Trust it, fingerprint pasted with the 05 prefix and no spaces.
    let pasted = format!("05{}", juliet_key.fingerprint().replace(' ', ""));
    let t = ok(&jet(dir, &["trust", "juliet@jet.test", &pasted]));
    assert!(t.contains("trusted (1 device)"), "{t}");
    let list = ok(&jet(dir, &["list", "juliet@jet.test"]));
    assert!(
        list.contains("trusted") && !list.contains("undecided"),
        "{list}"
    );
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(
        s.remote_identity(&DeviceAddress::new("juliet@jet.test", 4242))
            .unwrap(),
        Some((juliet_key, Trust::Trusted))
    );
    drop(s);
    // A fingerprint of no known device is remembered for later.
    let t = ok(&jet(
        dir,
        &["trust", "juliet@jet.test", &other_key.fingerprint()],
    ));
    assert!(t.contains("no device with it seen yet"), "{t}");
    // Bad fingerprints are clear errors.
    for bad in ["abc", "zz", &"g".repeat(64)] {
        let o = jet(dir, &["trust", "juliet@jet.test", bad]);
        assert!(!o.status.success(), "{bad} accepted");
        assert!(String::from_utf8_lossy(&o.stderr).contains("jet:"));
    }
    // Unknown peer: nothing listed.
    let none = ok(&jet(dir, &["list", "nobody@jet.test"]));
    assert!(none.contains("no keys known"), "{none}");
}

#[test]
fn ox_show_trust_list_export() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let me: BareJid = "romeo@jet.test".parse().unwrap();
    let peer: BareJid = "juliet@jet.test".parse().unwrap();
    let store = FileKeyStore::open(dir.join("ox-romeo@jet.test")).unwrap();
    let key = OxSecretKey::generate(&me).unwrap();
    store.set_own_key(&key).unwrap();
    let theirs = OxSecretKey::generate(&peer).unwrap();
    store.add_peer_key(&peer, &theirs.public_key()).unwrap();

    let out = ok(&jet(dir, &["show", "--jid", "romeo@jet.test"]));
    assert!(out.contains(&format!("ox {}", key.fingerprint())), "{out}");
    let list = ok(&jet(dir, &["list", "juliet@jet.test"]));
    assert!(list.contains(theirs.fingerprint()), "{list}");
    let lower = theirs.fingerprint().to_ascii_lowercase();
    let t = ok(&jet(dir, &["trust", "juliet@jet.test", &lower]));
    assert!(t.contains("trusted"), "{t}");
    // A 40-digit fingerprint we do not hold is refused.
    let o = jet(dir, &["trust", "juliet@jet.test", &"A".repeat(40)]);
    assert!(!o.status.success());

    let out_dir = dir.join("export");
    let o = ok(&jet(
        dir,
        &[
            "export",
            "--ox",
            "--secret",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    ));
    let public = out_dir.join("romeo@jet.test.pub.asc");
    let secret = out_dir.join("romeo@jet.test.sec.asc");
    assert!(o.contains("pub.asc") && o.contains("sec.asc"), "{o}");
    let pubtext = std::fs::read_to_string(&public).unwrap();
    assert!(pubtext.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let sectext = std::fs::read_to_string(&secret).unwrap();
    assert!(sectext.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600);
    }
    // GnuPG accepts them, when it is installed.
    if Command::new("gpg").arg("--version").output().is_ok() {
        let home = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        for f in [&public, &secret] {
            let o = Command::new("gpg")
                .arg("--homedir")
                .arg(home.path())
                .args(["--batch", "--import"])
                .arg(f)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "gpg --import {}: {}",
                f.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let o = Command::new("gpg")
            .arg("--homedir")
            .arg(home.path())
            .args(["--batch", "--with-colons", "--list-secret-keys"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&o.stdout);
        assert!(listing.contains(key.fingerprint()), "{listing}");
        // Stop the agent this import started.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(home.path())
            .args(["--kill", "all"])
            .output();
    } else {
        println!("gpg not installed: import not checked");
    }
    // Without --ox the export is refused.
    assert!(!jet(dir, &["export"]).status.success());
}

/// The module rows of a QR code printed with half blocks, light modules
/// drawn (`jet keys show --qr`): `true` is dark. The last line is a half
/// line (a QR code with its quiet zone has an odd number of rows).
fn qr_modules(lines: &[&str]) -> Vec<Vec<bool>> {
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            let (t, b) = match c {
                '█' => (false, false),
                ' ' => (true, true),
                '▀' => (false, true),
                '▄' => (true, false),
                other => panic!("{other:?} in a QR code line"),
            };
            top.push(t);
            bottom.push(b);
        }
        rows.push(top);
        if i + 1 < lines.len() {
            rows.push(bottom);
        }
    }
    rows
}

/// Decodes the QR code in `jet keys show --qr`'s output.
fn decode_qr(out: &str) -> String {
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| " █▀▄".contains(c)))
        .collect();
    assert!(lines.len() > 10, "no QR code in:\n{out}");
    let modules = qr_modules(&lines);
    let scale = 4;
    let (h, w) = (modules.len(), modules[0].len());
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w * scale, h * scale, |x, y| {
        if modules[y / scale][x / scale] {
            0
        } else {
            255
        }
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code expected in:\n{out}");
    grids[0].decode().expect("the QR code decodes").1
}

/// `jet keys show --qr` prints our OMEMO identity as an `xmpp:` URI and as
/// a QR code of it; `jet keys trust URI` on another account's store
/// trusts exactly the devices it lists, for that JID only, and refuses a
/// fingerprint that differs from the key seen for the device.
#[test]
fn omemo_uri_and_qr_round_trip() {
    let romeo_dir = tempfile::tempdir().unwrap();
    let out = ok(&jet(
        romeo_dir.path(),
        &["show", "--jid", "romeo@jet.test", "--qr"],
    ));
    let store = SqliteStore::open(romeo_dir.path().join("omemo-romeo@jet.test.sqlite")).unwrap();
    let romeo_key = store.identity_key_pair().unwrap().public;
    let romeo_device = store.device_id();
    drop(store);
    let hex: String = romeo_key.fingerprint().replace(' ', "");
    let uri = format!("xmpp:romeo@jet.test?omemo-sid-{romeo_device}={hex}");
    assert!(out.lines().any(|l| l.trim() == uri), "{uri} not in:\n{out}");
    assert_eq!(decode_qr(&out), uri);

    // Juliet's store: Romeo's device seen (undecided), and Mallory's
    // device with the same key (the URI is only about romeo@jet.test).
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ok(&jet(dir, &["show", "--jid", "juliet@jet.test"]));
    let path = dir.join("omemo-juliet@jet.test.sqlite");
    {
        let mut s = SqliteStore::open(&path).unwrap();
        s.save_remote_identity(
            &DeviceAddress::new("romeo@jet.test", romeo_device),
            &romeo_key,
            Trust::Undecided,
        )
        .unwrap();
        s.save_remote_identity(
            &DeviceAddress::new("mallory@jet.test", 7),
            &romeo_key,
            Trust::Undecided,
        )
        .unwrap();
    }
    let trust_of = |jid: &str| {
        let s = SqliteStore::open(&path).unwrap();
        s.known_devices(jid).unwrap()[0].trust
    };

    // A fingerprint that is not the device's key: refused, nothing changes.
    let wrong = KeyPair::generate().unwrap().public;
    let bad_uri = format!(
        "xmpp:romeo@jet.test?omemo-sid-{romeo_device}={}",
        wrong.fingerprint().replace(' ', "")
    );
    let o = jet(dir, &["trust", &bad_uri]);
    assert!(
        !o.status.success(),
        "a mismatching fingerprint was accepted"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("REFUSED") && err.contains(&romeo_key.fingerprint()),
        "{err}"
    );
    assert_eq!(trust_of("romeo@jet.test"), Trust::Undecided);

    // The URI Romeo showed: his device is trusted, Mallory's is not.
    let t = ok(&jet(dir, &["trust", &uri]));
    assert!(
        t.contains(&format!("omemo romeo@jet.test device {romeo_device}")) && t.contains("trusted"),
        "{t}"
    );
    assert_eq!(trust_of("romeo@jet.test"), Trust::Trusted);
    assert_eq!(trust_of("mallory@jet.test"), Trust::Undecided);

    // A device not seen yet is recorded, said so.
    let other = KeyPair::generate().unwrap().public;
    let t = ok(&jet(
        dir,
        &[
            "trust",
            &format!(
                "xmpp:romeo@jet.test?omemo-sid-99={}",
                other.fingerprint().replace(' ', "")
            ),
        ],
    ));
    assert!(t.contains("not seen yet"), "{t}");
}
