//! Independent check of JET-OX with GnuPG: what our envelope produces
//! decrypts and verifies with `gpg`, and what `gpg` produces (signed and
//! encrypted with a key `gpg` generated) opens in our envelope.
//!
//! Needs `gpg` (Debian package `gnupg`). Without it the tests print why and
//! pass, unless `JET_REQUIRE_GPG=1` (CI), where a missing gpg fails them.
#![cfg(feature = "ox")]

mod ox_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use jet_core::envelope::EnvelopeBackend;
use jet_envelopes::ox::elements::{
    jet_secret_element, jet_secret_of, openpgp_element, openpgp_message, random_rpad, unix_now,
};
use jet_envelopes::ox::{
    export_armored, MemoryKeyStore, OxEnvelope, OxKeyStore, OxPublicKey, OxSecretKey, Signcrypt,
};
use ox_support::*;

/// A throw-away GnuPG home; kills its agent on drop.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    /// `None` (after saying why) when gpg is missing and not required.
    fn new() -> Option<Gpg> {
        let found = Command::new("gpg")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            if std::env::var("JET_REQUIRE_GPG").as_deref() == Ok("1") {
                panic!(
                    "JET_REQUIRE_GPG=1 but `gpg` was not found: install GnuPG \
                     (Debian: apt-get install gnupg)"
                );
            }
            eprintln!(
                "SKIPPED: `gpg` not found, so the GnuPG interop check did not run \
                 (install gnupg; set JET_REQUIRE_GPG=1 to make this a failure)"
            );
            return None;
        }
        let home = tempfile::Builder::new().prefix("jetgpg").tempdir().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        Some(Gpg { home })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Runs gpg in batch mode with our home; panics with its output on failure.
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args([
                "--batch",
                "--yes",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .expect("running gpg");
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn import(&self, file: &Path) {
        self.run(&["--import", file.to_str().unwrap()]);
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

#[tokio::test]
async fn gpg_decrypts_and_verifies_what_we_seal() {
    let Some(gpg) = Gpg::new() else { return };
    let romeo = Party::new(ROMEO);
    let juliet_key = OxSecretKey::generate(&bare(JULIET)).unwrap();
    romeo
        .store
        .add_peer_key(&bare(JULIET), &juliet_key.public_key())
        .unwrap();

    // Juliet's side is gpg: it gets her secret key and Romeo's public key
    // through our export function.
    export_armored(
        &juliet_key,
        &gpg.path("juliet.pub.asc"),
        Some(&gpg.path("juliet.sec.asc")),
    )
    .unwrap();
    export_armored(&romeo.key, &gpg.path("romeo.pub.asc"), None).unwrap();
    gpg.import(&gpg.path("juliet.sec.asc"));
    gpg.import(&gpg.path("romeo.pub.asc"));
    let listing = gpg.run(&["--with-colons", "--list-keys"]);
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(listing.contains("xmpp\\x3aromeo@montague.lit"), "{listing}");
    assert!(listing.contains(romeo.key.fingerprint()), "{listing}");

    let ts = AES256_SIZES.generate().unwrap();
    let ee = romeo
        .env
        .seal(&ts, &JULIET_FULL.parse().unwrap())
        .await
        .unwrap();
    std::fs::write(gpg.path("msg.gpg"), openpgp_message(&ee).unwrap()).unwrap();

    let out = gpg.run(&[
        "--status-fd",
        "1",
        "--output",
        gpg.path("plain.xml").to_str().unwrap(),
        "--decrypt",
        gpg.path("msg.gpg").to_str().unwrap(),
    ]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(status.contains("[GNUPG:] DECRYPTION_OKAY"), "{status}");
    assert!(status.contains("[GNUPG:] GOODSIG"), "{status}");
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {}", romeo.key.fingerprint())),
        "{status}"
    );
    assert!(!status.contains("BADSIG"), "{status}");
    // gpg verified the MDC (integrity protection).
    assert!(
        status.contains("[GNUPG:] GOODMDC") || status.contains("DECRYPTION_OKAY"),
        "{status}"
    );

    let xml = std::fs::read_to_string(gpg.path("plain.xml")).unwrap();
    let content = Signcrypt::from_xml(&xml).unwrap();
    assert_eq!(content.to, vec![bare(JULIET)]);
    assert!((content.time - unix_now()).abs() < 120);
    assert_eq!(
        jet_secret_of(&content.payload).unwrap().as_slice(),
        ts.to_bytes().as_slice()
    );
}

#[tokio::test]
async fn our_envelope_opens_what_gpg_signs_and_encrypts() {
    let Some(gpg) = Gpg::new() else { return };
    // Romeo's key is made by gpg: Ed25519 primary (sign) + Curve25519 subkey.
    gpg.run(&[
        "--quick-gen-key",
        "xmpp:romeo@montague.lit",
        "ed25519",
        "sign",
        "never",
    ]);
    let listing = gpg.run(&["--with-colons", "--list-keys", "xmpp:romeo@montague.lit"]);
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let romeo_fpr = listing
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_string())
        })
        .expect("gpg lists a fingerprint");
    gpg.run(&["--quick-add-key", &romeo_fpr, "cv25519", "encr", "never"]);
    let exported = gpg.run(&["--export", &romeo_fpr]).stdout;
    let romeo_public = OxPublicKey::from_bytes(&exported).unwrap();
    assert_eq!(romeo_public.fingerprint(), romeo_fpr);

    // Juliet is us; gpg gets her public key.
    let juliet_key = OxSecretKey::generate(&bare(JULIET)).unwrap();
    let store = Arc::new(MemoryKeyStore::new());
    // The gpg-made key passes our XEP-0373 checks.
    store.add_peer_key(&bare(ROMEO), &romeo_public).unwrap();
    let juliet = OxEnvelope::new(juliet_key.clone(), store);
    export_armored(&juliet_key, &gpg.path("juliet.pub.asc"), None).unwrap();
    gpg.import(&gpg.path("juliet.pub.asc"));

    let ts = AES256_SIZES.generate().unwrap();
    let content = Signcrypt {
        to: vec![bare(JULIET)],
        time: unix_now(),
        rpad: Some(random_rpad()),
        payload: vec![jet_secret_element(&ts.to_bytes())],
    };
    std::fs::write(gpg.path("signcrypt.xml"), content.to_xml()).unwrap();
    // gpg's defaults: it compresses, one-pass-signs, encrypts (SEIPD v1).
    gpg.run(&[
        "--trust-model",
        "always",
        "--local-user",
        &romeo_fpr,
        "--recipient",
        juliet_key.fingerprint(),
        "--output",
        gpg.path("msg.gpg").to_str().unwrap(),
        "--sign",
        "--encrypt",
        gpg.path("signcrypt.xml").to_str().unwrap(),
    ]);
    let message = std::fs::read(gpg.path("msg.gpg")).unwrap();
    let ee = openpgp_element(&message);

    let opened = juliet
        .open(&ee, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap();
    assert_eq!(opened.secret, ts);
    assert_eq!(opened.sender, bare(ROMEO));
    assert_eq!(opened.sender_key.as_deref(), Some(romeo_fpr.as_str()));

    // The gpg-made message, claimed by someone else, is refused.
    let nurse = OxSecretKey::generate(&bare("nurse@capulet.lit")).unwrap();
    juliet
        .store()
        .add_peer_key(&bare("nurse@capulet.lit"), &nurse.public_key())
        .unwrap();
    let juliet2 = OxEnvelope::new(juliet_key, juliet.store().clone());
    let err = juliet2
        .open(&ee, &"nurse@capulet.lit/x".parse().unwrap(), AES256_SIZES)
        .await
        .unwrap_err();
    assert!(
        matches!(err, jet_core::error::EnvelopeError::WrongSender { .. }),
        "{err:?}"
    );
}
