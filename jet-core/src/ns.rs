//! Every namespace and URN jet speaks, in one place.
//!
//! XEP-0391 writes its cipher URNs both with and without the `:0` suffix; see
//! [`normalize_cipher_urn`] for how we compare them.

/// XEP-0166 Jingle.
pub const JINGLE: &str = "urn:xmpp:jingle:1";
/// XEP-0166 Jingle errors.
pub const JINGLE_ERRORS: &str = "urn:xmpp:jingle:errors:1";
/// XEP-0391 JET, the `<security/>` element and its disco feature.
pub const JET: &str = "urn:xmpp:jingle:jet:0";
/// Disco feature of the stub envelope (note: differs from its element namespace).
pub const JET_STUB_FEATURE: &str = "urn:xmpp:jingle:jet-stub:0";
/// Element namespace and `type` of the stub envelope.
pub const ENCRYPTION_STUB: &str = "urn:xmpp:encryption:stub:0";
/// Disco feature of JET-OMEMO (XEP-0396).
pub const JET_OMEMO_FEATURE: &str = "urn:xmpp:jingle:jet-omemo:0";
/// OMEMO 0.3 namespace, the envelope `type` of deployed JET-OMEMO.
pub const OMEMO_LEGACY: &str = "eu.siacs.conversations.axolotl";
/// Disco feature of our JET-OX profile.
pub const JET_OX_FEATURE: &str = "urn:xmpp:jingle:jet-ox:0";
/// XEP-0373 OpenPGP for XMPP, the envelope `type` of JET-OX.
pub const OX: &str = "urn:xmpp:openpgp:0";

/// XEP-0234 Jingle File Transfer.
pub const JINGLE_FT: &str = "urn:xmpp:jingle:apps:file-transfer:5";
/// XEP-0260 Jingle SOCKS5 Bytestreams transport.
pub const JINGLE_S5B: &str = "urn:xmpp:jingle:transports:s5b:1";
/// XEP-0261 Jingle In-Band Bytestreams transport.
pub const JINGLE_IBB: &str = "urn:xmpp:jingle:transports:ibb:1";
/// XEP-0047 In-Band Bytestreams.
pub const IBB: &str = "http://jabber.org/protocol/ibb";
/// XEP-0065 SOCKS5 Bytestreams (proxy discovery and activation).
pub const BYTESTREAMS: &str = "http://jabber.org/protocol/bytestreams";
/// XEP-0300 hashes.
pub const HASHES: &str = "urn:xmpp:hashes:2";
/// XEP-0030 disco#info.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 disco#items.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// RFC 6120 stanza error conditions.
pub const XMPP_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// The client namespace of stanzas.
pub const JABBER_CLIENT: &str = "jabber:client";

/// XEP-0391 AES-128-GCM, whole stream as one GCM message.
pub const CIPHER_AES_128_GCM: &str = "urn:xmpp:ciphers:aes-128-gcm-nopadding:0";
/// XEP-0391 AES-256-GCM, whole stream as one GCM message.
pub const CIPHER_AES_256_GCM: &str = "urn:xmpp:ciphers:aes-256-gcm-nopadding:0";
/// jet extension: ChaCha20-Poly1305 (RFC 8439), whole stream as one AEAD message.
pub const CIPHER_CHACHA20_POLY1305: &str = "urn:xmpp:ciphers:chacha20-poly1305:jet:0";
/// jet extension: chunked STREAM mode over AES-256-GCM (see `jet-ciphers` docs).
pub const CIPHER_AES_256_GCM_CHUNKED: &str = "urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0";

/// Strips a trailing `:0` version so that `urn:xmpp:ciphers:aes-128-gcm-nopadding`
/// (Dino, Conversations, the spec's listings) and
/// `urn:xmpp:ciphers:aes-128-gcm-nopadding:0` (the spec's table) compare equal.
pub fn normalize_cipher_urn(urn: &str) -> &str {
    let urn = urn.trim();
    urn.strip_suffix(":0").unwrap_or(urn)
}

/// Whether two cipher URNs name the same cipher, ignoring the `:0` suffix.
pub fn same_cipher(a: &str, b: &str) -> bool {
    normalize_cipher_urn(a) == normalize_cipher_urn(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_urns_compare_with_and_without_version() {
        assert!(same_cipher(
            "urn:xmpp:ciphers:aes-128-gcm-nopadding",
            CIPHER_AES_128_GCM
        ));
        assert!(!same_cipher(CIPHER_AES_128_GCM, CIPHER_AES_256_GCM));
        assert_eq!(
            normalize_cipher_urn(" urn:xmpp:ciphers:aes-256-gcm-nopadding:0 "),
            "urn:xmpp:ciphers:aes-256-gcm-nopadding"
        );
    }
}
