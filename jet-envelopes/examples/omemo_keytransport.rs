//! Two in-memory OMEMO 0.3 devices exchange JET-OMEMO key transports, and
//! the time per operation is printed:
//! `cargo run --release -p jet-envelopes --example omemo_keytransport`.

use std::time::Instant;

use jet_core::TransportSecret;
use jet_envelopes::omemo::{DeviceAddress, InMemoryStore, OmemoManager, Recipient};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let mut romeo = OmemoManager::new(InMemoryStore::generate(1001)?, "romeo@montague.lit");
    let mut juliet = OmemoManager::new(InMemoryStore::generate(2002)?, "juliet@capulet.lit");
    println!("2 devices with 100 prekeys each: {:?}", t.elapsed());

    let juliet_dev = Recipient {
        address: DeviceAddress::new("juliet@capulet.lit", 2002),
        bundle: Some(juliet.bundle()?),
    };
    let romeo_dev = Recipient {
        address: DeviceAddress::new("romeo@montague.lit", 1001),
        bundle: None,
    };

    // Session start: X3DH (signature check, 4 DH) + first ratchet message.
    let ts = TransportSecret::generate_with(16, 12)?;
    let t = Instant::now();
    let ee = romeo.seal_transport_secret(&ts, std::slice::from_ref(&juliet_dev))?;
    let sealed = t.elapsed();
    let t = Instant::now();
    let opened = juliet
        .decrypt("romeo@montague.lit", &ee)?
        .key_transport_secret()?;
    println!("session start: seal {sealed:?}, open {:?}", t.elapsed());
    assert_eq!(opened, ts);

    // Steady state: alternate directions, so every message is a DH ratchet step.
    let n = 200;
    let t = Instant::now();
    for i in 0..n {
        let ts = TransportSecret::generate_with(16, 12)?;
        let (from, to, to_jid, dev) = if i % 2 == 0 {
            (&mut juliet, &mut romeo, "juliet@capulet.lit", &romeo_dev)
        } else {
            (&mut romeo, &mut juliet, "romeo@montague.lit", &juliet_dev)
        };
        let ee = from.seal_transport_secret(&ts, std::slice::from_ref(dev))?;
        let got = to.decrypt(to_jid, &ee)?.key_transport_secret()?;
        assert_eq!(got, ts);
    }
    println!(
        "{n} seal+open pairs with a DH ratchet step each: {:?} per pair",
        t.elapsed() / n
    );
    Ok(())
}
