//! `jet ciphers`, `jet encrypt`, `jet decrypt` through the built binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const JET: &str = env!("CARGO_BIN_EXE_jet");
const AES128: &str = "urn:xmpp:ciphers:aes-128-gcm-nopadding:0";

fn jet(args: &[&str]) -> Output {
    Command::new(JET)
        .args(args)
        .env_remove("JET_KEY")
        .env_remove("JET_IV")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn jet_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(JET)
        .args(args)
        .env_remove("JET_KEY")
        .env_remove("JET_IV")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `(urn, key bytes, iv bytes)` from `jet ciphers`.
fn listed_ciphers() -> Vec<(String, usize, usize)> {
    let out = jet(&["ciphers"]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (
                cols[0].to_owned(),
                cols[1].parse::<usize>().unwrap() / 8,
                cols[2].parse::<usize>().unwrap() / 8,
            )
        })
        .collect()
}

fn key_iv(key_len: usize, iv_len: usize) -> (String, String) {
    let key: Vec<u8> = (0..key_len as u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(1))
        .collect();
    let iv: Vec<u8> = (0..iv_len as u8).map(|i| 0xa0 + i).collect();
    (hex::encode(key), hex::encode(iv))
}

fn no_partial_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".jet-partial-"), "left behind: {name}");
    }
}

#[test]
fn ciphers_lists_every_suite_machine_readably() {
    let listed = listed_ciphers();
    let urns: Vec<&str> = listed.iter().map(|c| c.0.as_str()).collect();
    assert!(urns.contains(&AES128));
    assert!(urns.contains(&"urn:xmpp:ciphers:aes-256-gcm-nopadding:0"));
    assert!(urns.contains(&"urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0"));
    assert!(urns.contains(&"urn:xmpp:ciphers:chacha20-poly1305:jet:0"));
    assert!(listed.contains(&(AES128.to_owned(), 16, 12)));
    let text = String::from_utf8(jet(&["ciphers"]).stdout).unwrap();
    for line in text.lines() {
        assert_eq!(
            line.contains("(jet extension") || line.contains(", jet extension"),
            line.contains(":jet:"),
            "{line}"
        );
    }
}

#[test]
fn encrypt_decrypt_round_trip_for_every_cipher() {
    let dir = tempfile::tempdir().unwrap();
    let plain: Vec<u8> = (0..200_003u32).map(|i| (i % 253) as u8).collect();
    let input = dir.path().join("plain.bin");
    std::fs::write(&input, &plain).unwrap();
    for (urn, key_len, iv_len) in listed_ciphers() {
        let (key, iv) = key_iv(key_len, iv_len);
        let enc = dir.path().join("enc.bin");
        let dec = dir.path().join("dec.bin");
        let o = jet(&[
            "encrypt",
            "--cipher",
            &urn,
            "--key",
            &key,
            "--iv",
            &iv,
            input.to_str().unwrap(),
            enc.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{urn}: {}", stderr(&o));
        let ct = std::fs::read(&enc).unwrap();
        assert!(ct.len() > plain.len());
        assert_ne!(&ct[..100], &plain[..100]);
        let o = jet(&[
            "decrypt",
            "-c",
            &urn,
            "-k",
            &key,
            "-i",
            &iv,
            enc.to_str().unwrap(),
            dec.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{urn}: {}", stderr(&o));
        assert!(std::fs::read(&dec).unwrap() == plain, "{urn}");
        // Through stdin/stdout as well, with the URN written without ':0'.
        let bare = urn.strip_suffix(":0").unwrap();
        let o = jet_stdin(
            &["decrypt", "-c", bare, "-k", &key, "-i", &iv, "-", "-"],
            &ct,
        );
        assert!(o.status.success(), "{urn}: {}", stderr(&o));
        assert!(o.stdout == plain, "{urn} via stdout");
        std::fs::remove_file(&dec).unwrap();
    }
    no_partial_files(dir.path());
}

#[test]
fn tampered_input_fails_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let plain = vec![7u8; 100_000];
    let input = dir.path().join("plain.bin");
    std::fs::write(&input, &plain).unwrap();
    for (urn, key_len, iv_len) in listed_ciphers() {
        let (key, iv) = key_iv(key_len, iv_len);
        let enc = dir.path().join("enc.bin");
        let o = jet(&[
            "encrypt",
            "-c",
            &urn,
            "-k",
            &key,
            "-i",
            &iv,
            input.to_str().unwrap(),
            enc.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut ct = std::fs::read(&enc).unwrap();
        let n = ct.len();
        for (what, bad) in [
            ("bit flip", {
                ct[n / 2] ^= 1;
                ct.clone()
            }),
            ("truncated", {
                ct[n / 2] ^= 1;
                ct[..n - 1].to_vec()
            }),
        ] {
            let badf = dir.path().join("bad.bin");
            std::fs::write(&badf, &bad).unwrap();
            let out = dir.path().join("out.bin");
            let o = jet(&[
                "decrypt",
                "-c",
                &urn,
                "-k",
                &key,
                "-i",
                &iv,
                badf.to_str().unwrap(),
                out.to_str().unwrap(),
            ]);
            assert!(!o.status.success(), "{urn} {what}: accepted");
            let err = stderr(&o);
            assert!(err.contains("decryption failed"), "{urn} {what}: {err}");
            assert!(err.contains("nothing was written"), "{err}");
            assert!(!out.exists(), "{urn} {what}: OUT exists");
            // To stdout: nothing is printed either.
            let o = jet_stdin(
                &["decrypt", "-c", &urn, "-k", &key, "-i", &iv, "-", "-"],
                &bad,
            );
            assert!(!o.status.success());
            assert!(
                o.stdout.is_empty(),
                "{urn} {what}: unauthenticated bytes on stdout"
            );
        }
        // An existing OUT is left untouched by a failed decryption.
        let out = dir.path().join("keep.bin");
        std::fs::write(&out, b"old").unwrap();
        let badf = dir.path().join("bad.bin");
        let o = jet(&[
            "decrypt",
            "-c",
            &urn,
            "-k",
            &key,
            "-i",
            &iv,
            badf.to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
    }
    no_partial_files(dir.path());
}

#[test]
fn bad_key_iv_and_unknown_cipher_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, b"data").unwrap();
    let out = dir.path().join("out");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let iv = "a0a1a2a3a4a5a6a7a8a9aaab";

    let r = jet(&["encrypt", "-c", AES128, "-k", "0011", "-i", iv, i, o]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("wrong key length"), "{}", stderr(&r));
    assert!(stderr(&r).contains("expected 16 bytes"), "{}", stderr(&r));

    let key = "000102030405060708090a0b0c0d0e0f";
    let r = jet(&["decrypt", "-c", AES128, "-k", key, "-i", "a0a1a2", i, o]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("wrong IV length"), "{}", stderr(&r));

    let r = jet(&["encrypt", "-c", AES128, "-k", "zz", "-i", iv, i, o]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("not valid hex"), "{}", stderr(&r));

    let r = jet(&[
        "encrypt",
        "-c",
        "urn:xmpp:ciphers:rot13:0",
        "-k",
        key,
        "-i",
        iv,
        i,
        o,
    ]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("unknown cipher"), "{}", stderr(&r));
    assert!(
        stderr(&r).contains(AES128),
        "lists the supported ones: {}",
        stderr(&r)
    );

    // IV equal to the key prefix is refused (XEP-0391 §7).
    let r = jet(&["encrypt", "-c", AES128, "-k", key, "-i", &key[..24], i, o]);
    assert!(!r.status.success());
    assert!(
        stderr(&r).to_lowercase().contains("iv equals the key"),
        "{}",
        stderr(&r)
    );
    assert!(!out.exists());
}

#[test]
fn aes_gcm_output_equals_known_vectors() {
    // NIST CAVP gcmEncryptExtIV128.rsp / gcmEncryptExtIV256.rsp (empty AAD).
    let cases = [
        (
            AES128,
            "7fddb57453c241d03efbed3ac44e371c",
            "ee283a3fc75575e33efd4887",
            "d5de42b461646c255c87bd2962d3b9a2",
            "2ccda4a5415cb91e135c2a0f78c9b2fdb36d1df9b9d5e596f83e8b7f52971cb3",
        ),
        (
            "urn:xmpp:ciphers:aes-256-gcm-nopadding",
            "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
            "0d18e06c7c725ac9e362e1ce",
            "2db5168e932556f8089a0622981d017d",
            "fa4362189661d163fcd6a56d8bf0405ad636ac1bbedd5cc3ee727dc2ab4a9489",
        ),
        // Python: AESGCM(key).encrypt(iv, b"hello", None)
        (
            AES128,
            "000102030405060708090a0b0c0d0e0f",
            "a0a1a2a3a4a5a6a7a8a9aaab",
            "68656c6c6f",
            "c2e354d7112a284486d3b3eceef9d70adf5d9a38b1",
        ),
    ];
    for (urn, key, iv, pt, expected) in cases {
        let o = jet_stdin(
            &["encrypt", "-c", urn, "-k", key, "-i", iv, "-", "-"],
            &hex::decode(pt).unwrap(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(hex::encode(&o.stdout), expected, "{urn}");
        let o = jet_stdin(
            &["decrypt", "-c", urn, "-k", key, "-i", iv, "-", "-"],
            &hex::decode(expected).unwrap(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(hex::encode(&o.stdout), pt);
    }
}

#[test]
fn key_and_iv_from_the_environment() {
    let o = Command::new(JET)
        .args(["encrypt", "-c", AES128, "-", "-"])
        .env("JET_KEY", "000102030405060708090a0b0c0d0e0f")
        .env("JET_IV", "a0a1a2a3a4a5a6a7a8a9aaab")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Empty plaintext: just the tag.
    assert_eq!(o.stdout.len(), 16);
}
