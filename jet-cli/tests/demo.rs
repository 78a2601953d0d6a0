//! `jet demo` end to end: every transport and cipher gives a verified copy,
//! the request and interrupted-then-resumed paths work, and the stanzas it
//! prints have the structure of XEP-0391's listings.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use jet_core::minidom::Element;

fn jet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jet"))
        .args(args)
        .output()
        .expect("run jet")
}

fn assert_verified(out: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("hash match: OK"),
        "{what}: status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

#[test]
fn every_transport_and_cipher_delivers_a_verified_file() {
    let ciphers = [
        "urn:xmpp:ciphers:aes-128-gcm-nopadding:0",
        "urn:xmpp:ciphers:aes-256-gcm-nopadding", // the spec listings' form, no :0
        "urn:xmpp:ciphers:chacha20-poly1305:jet:0",
        "urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0",
    ];
    for transport in ["s5b", "ibb", "auto"] {
        for cipher in ciphers {
            let out = jet(&[
                "demo",
                "--size",
                "200k",
                "--transport",
                transport,
                "--cipher",
                cipher,
            ]);
            assert_verified(&out, &format!("{transport} {cipher}"));
        }
    }
}

#[test]
fn request_and_resume_paths() {
    assert_verified(&jet(&["demo", "--size", "300k", "--request"]), "request");
    let out = jet(&[
        "demo",
        "--size",
        "1M",
        "--cipher",
        "urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0",
        "--interrupt-at",
        "300000",
    ]);
    assert_verified(&out, "chunked interrupt + resume");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("<range offset='262144'/>"),
        "the chunked resume starts at the last authenticated chunk boundary:\n{stderr}"
    );
    assert_verified(
        &jet(&["demo", "--size", "1M", "--interrupt-at", "300000"]),
        "gcm interrupt + resume",
    );
}

#[test]
fn unknown_cipher_is_a_clear_error() {
    let out = jet(&["demo", "--cipher", "urn:example:rot13"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown cipher"), "{stderr}");
}

/// XEP-0391 listing 1 (session-initiate of a file offer), with the PDF
/// extraction's spaces removed.
const LISTING_1: &str = r#"<iq xmlns='jabber:client' from='romeo@montague.example/dr4hcr0st3lup4c' id='nzu25s8' to='juliet@capulet.example/yn0cl4bnw0yr3vym' type='set'>
<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' initiator='romeo@montague.example/dr4hcr0st3lup4c' sid='851ba2'>
<content creator='initiator' name='a-file-offer' senders='initiator'>
<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'>
<file>
<date>1969-07-21T02:56:15Z</date>
<desc>This is a test. If this were a real file...</desc>
<media-type>text/plain</media-type>
<name>test.txt</name>
<range/>
<size>6144</size>
<hash xmlns='urn:xmpp:hashes:2' algo='sha-1'>w0mcJylzCn+AfvuGdqkty2+KP48=</hash>
</file>
</description>
<transport xmlns='urn:xmpp:jingle:transports:s5b:1' mode='tcp' sid='vj3hs98y'>
<candidate cid='hft54dqy' host='192.168.4.1' jid='romeo@montague.example/dr4hcr0st3lup4c' port='5086' priority='8257636' type='direct'/>
</transport>
<security xmlns='urn:xmpp:jingle:jet:0' name='a-file-offer' cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding' type='urn:xmpp:encryption:stub:0'>
<encrypted xmlns='urn:xmpp:encryption:stub:0'>
<payload>BASE64-ENCODED-ENCRYPTED-SECRET</payload>
</encrypted>
</security>
</content>
</jingle>
</iq>"#;

/// Every element path (`{ns}name/...`) with the attribute names it carries.
fn shape(el: &Element, prefix: &str, out: &mut BTreeSet<String>) {
    let path = format!("{prefix}/{{{}}}{}", el.ns(), el.name());
    out.insert(path.clone());
    for ((_, name), _) in el.attrs() {
        out.insert(format!("{path}@{}", name.as_str()));
    }
    for child in el.children() {
        shape(child, &path, out);
    }
}

#[test]
fn printed_session_initiate_has_the_structure_of_listing_1() {
    let out = jet(&[
        "demo",
        "--size",
        "10k",
        "--transport",
        "s5b",
        "--envelope",
        "stub",
        "--show-stanzas",
    ]);
    assert_verified(&out, "show-stanzas");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let initiate = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("<iq") && l.contains("session-initiate"))
        .unwrap_or_else(|| panic!("no session-initiate printed:\n{stderr}"));
    assert!(
        stderr.contains("session-info") && stderr.contains("<received"),
        "the receiver sends XEP-0234 <received/> in session-info:\n{stderr}"
    );
    let ours: Element = initiate.parse().expect("printed stanza is XML");
    let spec: Element = LISTING_1.parse().expect("listing 1 parses");
    let (mut want, mut got) = (BTreeSet::new(), BTreeSet::new());
    shape(&spec, "", &mut want);
    shape(&ours, "", &mut got);
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "elements/attributes of listing 1 missing from our session-initiate: {missing:?}\nours: {initiate}"
    );
}

/// The demo's default envelope is JET-OMEMO: the session-initiate carries an
/// OMEMO 0.3 key transport element (per-device `<key>`, clear `<iv>`, no
/// `<payload>`), and the file arrives verified.
#[test]
fn the_default_demo_uses_jet_omemo() {
    let out = jet(&["demo", "--size", "20k", "--show-stanzas"]);
    assert_verified(&out, "omemo demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let initiate = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("<iq") && l.contains("session-initiate"))
        .unwrap_or_else(|| panic!("no session-initiate printed:\n{stderr}"));
    let iq: Element = initiate.parse().expect("printed stanza is XML");
    let security = iq
        .get_child("jingle", "urn:xmpp:jingle:1")
        .and_then(|j| j.get_child("content", "urn:xmpp:jingle:1"))
        .and_then(|c| c.get_child("security", "urn:xmpp:jingle:jet:0"))
        .expect("a <security/> element");
    assert_eq!(
        security.attr("type"),
        Some("eu.siacs.conversations.axolotl")
    );
    let ee = security
        .get_child("encrypted", "eu.siacs.conversations.axolotl")
        .expect("an OMEMO <encrypted/>");
    let header = ee
        .get_child("header", "eu.siacs.conversations.axolotl")
        .expect("a header");
    assert!(header
        .get_child("iv", "eu.siacs.conversations.axolotl")
        .is_some());
    assert!(header
        .children()
        .any(|k| k.name() == "key" && k.attr("rid") == Some("2002")));
    assert!(ee
        .get_child("payload", "eu.siacs.conversations.axolotl")
        .is_none());
}

/// Issue 17: without --out the received file's temporary directory is
/// gone when the demo ends, so no path into it is printed; with --out the
/// path is printed and exists. Enum names are not printed either.
#[test]
fn no_path_of_a_deleted_directory_is_printed() {
    let out = jet(&["demo", "--size", "10k"]);
    assert_verified(&out, "default demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("jet-demo-") && !stderr.contains("jet-demo-"),
        "a temporary path was printed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("keep the file with --out DIR"), "{stdout}");
    assert!(stderr.contains("transport auto"), "{stderr}");

    let kept = tempfile::tempdir().unwrap();
    let out = jet(&[
        "demo",
        "--size",
        "10k",
        "--out",
        kept.path().to_str().unwrap(),
    ]);
    assert_verified(&out, "demo --out");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = kept.path().join("romeo-to-juliet.bin");
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    assert!(path.exists());
}
