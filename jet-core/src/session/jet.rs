//! JET by configuration: which ciphers and envelopes we speak, and the
//! XEP-0391 steps around the engine (seal, open, sender check).
//!
//! An application never sees any of this: the driver (or a test acting as
//! one) seals a fresh [`TransportSecret`] into each content's
//! [`Security`] before `session-initiate`, and the responder opens it and
//! checks its sender (XEP-0391 §7) before it accepts.

use std::fmt;
use std::sync::Arc;

use jid::Jid;

use crate::cipher::{CipherSuite, Framing};
use crate::envelope::{EnvelopeBackend, EnvelopeContext, OpenedEnvelope};
use crate::error::EnvelopeError;
use crate::error::Error;
use crate::ns;
use crate::replay::{secret_digest, UsedSecrets};
use crate::secret::TransportSecret;
use crate::security::Security;

/// The JET configuration: cipher suites and envelope backends, both in
/// preference order (the first of each is what we offer).
#[derive(Clone)]
pub struct JetConfig {
    /// Cipher suites we accept, preferred first (from jet-ciphers, or a
    /// caller's own). jet-core does not depend on jet-ciphers.
    pub suites: Vec<&'static dyn CipherSuite>,
    /// Envelope backends we accept, preferred first.
    pub envelopes: Vec<Arc<dyn EnvelopeBackend>>,
    /// Refuse sessions without JET (default `true`). When `false`, a peer may
    /// still offer plaintext contents; an offered JET that fails is an
    /// error either way (XEP-0391 §7: never fall back to plaintext).
    pub require_encryption: bool,
    /// Write cipher URNs without their `:0` suffix, as Dino and
    /// Conversations do (Conversations accepts only that form). Default
    /// `false`: the form of the spec's cipher table. Both forms are always
    /// accepted.
    pub unversioned_cipher_urns: bool,
    /// The record of transport secrets already used (see [`crate::replay`]):
    /// every secret sealed or opened is recorded, and one seen before is
    /// refused with `security-error`. `None` (the default of
    /// [`JetConfig::new`]) records nothing: set it wherever a replayed
    /// offer could reach a responder (jet-cli keeps one per account).
    pub used_secrets: Option<Arc<dyn UsedSecrets>>,
}

impl fmt::Debug for JetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetConfig")
            .field(
                "suites",
                &self.suites.iter().map(|s| s.urn()).collect::<Vec<_>>(),
            )
            .field(
                "envelopes",
                &self
                    .envelopes
                    .iter()
                    .map(|e| e.envelope_type())
                    .collect::<Vec<_>>(),
            )
            .field("require_encryption", &self.require_encryption)
            .field("unversioned_cipher_urns", &self.unversioned_cipher_urns)
            .field("used_secrets", &self.used_secrets.is_some())
            .finish()
    }
}

impl JetConfig {
    /// A configuration that requires encryption.
    pub fn new(
        suites: Vec<&'static dyn CipherSuite>,
        envelopes: Vec<Arc<dyn EnvelopeBackend>>,
    ) -> Self {
        JetConfig {
            suites,
            envelopes,
            require_encryption: true,
            unversioned_cipher_urns: false,
            used_secrets: None,
        }
    }

    /// The suite for `urn`, ignoring the `:0` suffix.
    pub fn suite(&self, urn: &str) -> Option<&'static dyn CipherSuite> {
        self.suites
            .iter()
            .copied()
            .find(|s| ns::same_cipher(s.urn(), urn))
    }

    /// The envelope backend for `type`.
    pub fn envelope(&self, envelope_type: &str) -> Option<&Arc<dyn EnvelopeBackend>> {
        self.envelopes
            .iter()
            .find(|e| e.envelope_type() == envelope_type.trim())
    }

    /// The cipher URNs the engine should accept.
    pub fn cipher_urns(&self) -> Vec<String> {
        self.suites.iter().map(|s| s.urn().to_string()).collect()
    }

    /// The envelope types the engine should accept.
    pub fn envelope_types(&self) -> Vec<String> {
        self.envelopes
            .iter()
            .map(|e| e.envelope_type().to_string())
            .collect()
    }

    /// The disco#info features (XEP-0030) of a client with this
    /// configuration that accepts the Jingle transports `transports`
    /// (their namespaces): see [`disco_features`].
    pub fn disco_features(&self, transports: &[&str]) -> Vec<String> {
        let envelopes: Vec<&str> = self.envelopes.iter().map(|e| e.disco_feature()).collect();
        disco_features(&self.suites, &envelopes, transports)
    }

    /// The cipher to offer a peer with `peer_features` (its disco#info),
    /// sealed with our first envelope: see [`choose_cipher_as`](Self::choose_cipher_as).
    pub fn choose_cipher(&self, peer_features: &[String]) -> Result<CipherChoice, PeerUnfit> {
        self.choose_cipher_as(peer_features, None)
    }

    /// The cipher to offer a peer with `peer_features`, `wanted` if given
    /// (a caller's explicit choice). Refuses (never plaintext) a peer
    /// without JET or without our first envelope's feature. Then:
    /// - a peer that lists cipher URNs runs jet (deployed clients list
    ///   none): of our suites it lists, a chunked one first (authenticated
    ///   resume, no single-message size limit, the fastest), else the first
    ///   in our order, under the versioned URN; `wanted` must be among
    ///   those it lists;
    /// - a peer that lists none (Dino, Conversations, Libervia): `wanted`,
    ///   else AES-128-GCM, the one cipher they accept, under its URN
    ///   without `:0`, the form they accept (spec/INTEROP.md).
    pub fn choose_cipher_as(
        &self,
        peer_features: &[String],
        wanted: Option<&'static dyn CipherSuite>,
    ) -> Result<CipherChoice, PeerUnfit> {
        let has = |f: &str| peer_features.iter().any(|x| x == f);
        if !has(ns::JET) {
            return Err(PeerUnfit::NoJet);
        }
        let envelope = self.envelopes.first().ok_or(PeerUnfit::NoEnvelope)?;
        if !has(envelope.disco_feature()) {
            return Err(PeerUnfit::EnvelopeNotAdvertised {
                envelope_type: envelope.envelope_type(),
                feature: envelope.disco_feature(),
            });
        }
        let lists = |s: &dyn CipherSuite| peer_features.iter().any(|f| ns::same_cipher(f, s.urn()));
        let listed: Vec<&'static dyn CipherSuite> =
            self.suites.iter().copied().filter(|s| lists(*s)).collect();
        if let Some(suite) = wanted {
            if !listed.is_empty() && !lists(suite) {
                return Err(PeerUnfit::CipherNotAdvertised(suite.urn()));
            }
            return Ok(CipherChoice {
                suite,
                unversioned: listed.is_empty(),
            });
        }
        let chunked = listed
            .iter()
            .find(|s| matches!(s.framing(), Framing::Chunked { .. }));
        if let Some(suite) = chunked.or(listed.first()) {
            return Ok(CipherChoice {
                suite: *suite,
                unversioned: false,
            });
        }
        let suite = self
            .suite(ns::CIPHER_AES_128_GCM)
            .ok_or(PeerUnfit::NoInteropCipher)?;
        Ok(CipherChoice {
            suite,
            unversioned: true,
        })
    }

    /// This configuration narrowed to what an initiator offers after
    /// `choice`: that one suite, under the URN form the choice says.
    pub fn offering(&self, choice: &CipherChoice) -> JetConfig {
        JetConfig {
            suites: vec![choice.suite],
            unversioned_cipher_urns: choice.unversioned,
            ..self.clone()
        }
    }

    /// Initiator side (XEP-0391 §3): generates a fresh transport secret for
    /// `suite`, records it as used, seals it with the preferred envelope for
    /// `recipient` in the session `context`, and returns the `<security/>`
    /// for the context's content and the secret.
    pub async fn seal(
        &self,
        context: &EnvelopeContext,
        suite: &'static dyn CipherSuite,
        recipient: &Jid,
    ) -> Result<(Security, TransportSecret), Error> {
        let envelope = self
            .envelopes
            .first()
            .ok_or_else(|| Error::UnsupportedEnvelope("no envelope backend configured".into()))?;
        let secret = TransportSecret::generate(suite)?;
        self.record_use(&secret)?;
        let ee = envelope.seal_for(&secret, recipient, context).await?;
        let urn = CipherChoice {
            suite,
            unversioned: self.unversioned_cipher_urns,
        }
        .wire_urn();
        Ok((
            Security::new(&context.content, urn, envelope.envelope_type(), ee),
            secret,
        ))
    }

    /// Responder side (XEP-0391 §3, §7): finds the suite and envelope,
    /// opens the envelope received in a stanza from `stanza_sender` in the
    /// session `context`, checks that it comes from `initiator`, and
    /// records the secret as used, refusing one used before (a replay).
    /// Any failure is a `security-error` for the session; there is no
    /// plaintext fallback.
    pub async fn open(
        &self,
        context: &EnvelopeContext,
        security: &Security,
        initiator: &Jid,
        stanza_sender: &Jid,
    ) -> Result<(&'static dyn CipherSuite, TransportSecret), Error> {
        let suite = self
            .suite(&security.cipher)
            .ok_or_else(|| Error::UnsupportedCipher(security.cipher.clone()))?;
        let envelope = self
            .envelope(&security.envelope_type)
            .ok_or_else(|| Error::UnsupportedEnvelope(security.envelope_type.clone()))?;
        let opened = envelope
            .open_for(
                &security.envelope,
                stanza_sender,
                suite.secret_shape(),
                context,
            )
            .await?;
        verify_sender(initiator, &opened)?;
        self.record_use(&opened.secret)?;
        Ok((suite, opened.secret))
    }

    /// Records `secret` in [`Self::used_secrets`]; an error if it was used
    /// before or the record fails.
    fn record_use(&self, secret: &TransportSecret) -> Result<(), Error> {
        let Some(record) = &self.used_secrets else {
            return Ok(());
        };
        match record.record(&secret_digest(secret)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(EnvelopeError::Open(
                "this transport secret was already used (a replayed session-initiate?): \
                 refused, a key and IV never encrypt twice"
                    .into(),
            )
            .into()),
            Err(e) => Err(EnvelopeError::Store(format!(
                "the record of used transport secrets: {e}"
            ))
            .into()),
        }
    }
}

/// XEP-0391 §7: "The responder MUST check whether the envelope element
/// belongs to the initiator". Compares the bare JID the envelope proves with
/// the initiator's bare JID.
pub fn verify_sender(initiator: &Jid, opened: &OpenedEnvelope) -> Result<(), Error> {
    let expected = initiator.to_bare();
    if opened.sender != expected {
        return Err(Error::SenderMismatch {
            expected: expected.to_string(),
            got: opened.sender.to_string(),
        });
    }
    Ok(())
}

/// The disco#info features (XEP-0030) of a JET client: Jingle, JET, file
/// transfer with SHA-256 hashes, the Jingle `transports` given (their
/// namespaces; only those we accept: a peer must not offer one we would
/// refuse) with the bytestream protocol under each, the `envelopes`'
/// features and every cipher URN of `suites` (a peer that lists ciphers
/// runs jet: [`JetConfig::choose_cipher`]). Sorted, no duplicates.
pub fn disco_features(
    suites: &[&'static dyn CipherSuite],
    envelopes: &[&str],
    transports: &[&str],
) -> Vec<String> {
    let mut f: Vec<String> = [
        ns::JINGLE,
        ns::JET,
        ns::JINGLE_FT,
        ns::HASHES,
        "urn:xmpp:hash-function-text-names:sha-256",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for t in transports {
        f.push(t.to_string());
        // The bytestream protocols under the Jingle transports.
        match *t {
            ns::JINGLE_S5B => f.push(ns::BYTESTREAMS.to_string()),
            ns::JINGLE_IBB => f.push(ns::IBB.to_string()),
            _ => {}
        }
    }
    f.extend(envelopes.iter().map(|e| e.to_string()));
    f.extend(suites.iter().map(|s| s.urn().to_string()));
    f.sort();
    f.dedup();
    f
}

/// What an initiator offers a peer: [`JetConfig::choose_cipher`].
#[derive(Clone, Copy)]
pub struct CipherChoice {
    /// The suite to offer.
    pub suite: &'static dyn CipherSuite,
    /// Write its URN without `:0` (for deployed clients, which list no
    /// cipher and accept only that form).
    pub unversioned: bool,
}

impl CipherChoice {
    /// The cipher URN as it goes on the wire.
    pub fn wire_urn(&self) -> &'static str {
        if self.unversioned {
            ns::normalize_cipher_urn(self.suite.urn())
        } else {
            self.suite.urn()
        }
    }
}

impl fmt::Debug for CipherChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CipherChoice")
            .field("suite", &self.suite.urn())
            .field("unversioned", &self.unversioned)
            .finish()
    }
}

/// Why no session can be offered to a peer (by its disco#info): there is
/// no plaintext fallback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerUnfit {
    /// The peer does not list `urn:xmpp:jingle:jet:0`.
    #[error(
        "does not support Jingle Encrypted Transports ({} not in its disco#info)",
        ns::JET
    )]
    NoJet,
    /// We have no envelope backend.
    #[error("no envelope backend configured")]
    NoEnvelope,
    /// The peer does not list our envelope's feature.
    #[error("does not support the {envelope_type} envelope ({feature} not in its disco#info)")]
    EnvelopeNotAdvertised {
        /// Our envelope's `type`.
        envelope_type: &'static str,
        /// Its disco feature.
        feature: &'static str,
    },
    /// The peer lists ciphers, but not the one wanted.
    #[error("does not advertise the cipher {0}")]
    CipherNotAdvertised(&'static str),
    /// The peer lists no cipher and AES-128-GCM is not among our suites.
    #[error(
        "lists no cipher, and AES-128-GCM (the one deployed clients accept) is not configured"
    )]
    NoInteropCipher,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CipherError;
    use crate::testkit::TestEnvelope;

    /// A suite with a URN and a framing, never used to encrypt.
    #[derive(Debug)]
    struct Named(&'static str, Framing);

    impl CipherSuite for Named {
        fn urn(&self) -> &'static str {
            self.0
        }
        fn name(&self) -> &'static str {
            self.0
        }
        fn key_len(&self) -> usize {
            32
        }
        fn iv_len(&self) -> usize {
            12
        }
        fn accepted_iv_lens(&self) -> &'static [usize] {
            &[12]
        }
        fn tag_len(&self) -> usize {
            16
        }
        fn framing(&self) -> Framing {
            self.1
        }
        fn ciphertext_len(&self, plaintext_len: u64) -> u64 {
            plaintext_len + 16
        }
        fn encryptor(
            &self,
            _: &TransportSecret,
        ) -> Result<Box<dyn crate::cipher::StreamEncryptor>, CipherError> {
            Err(CipherError::Finished)
        }
        fn decryptor(
            &self,
            _: &TransportSecret,
        ) -> Result<Box<dyn crate::cipher::StreamDecryptor>, CipherError> {
            Err(CipherError::Finished)
        }
    }

    const WHOLE: Framing = Framing::SingleMessage {
        max_plaintext: 1 << 36,
    };
    static AES128: Named = Named(ns::CIPHER_AES_128_GCM, WHOLE);
    static AES256: Named = Named(ns::CIPHER_AES_256_GCM, WHOLE);
    static CHUNKED: Named = Named(
        ns::CIPHER_AES_256_GCM_CHUNKED,
        Framing::Chunked { chunk_len: 65536 },
    );
    static CHACHA: Named = Named(ns::CIPHER_CHACHA20_POLY1305, WHOLE);
    const ENVELOPE_FEATURE: &str = "urn:jet:test:envelope-feature";

    /// Our suites in the default registry's order (AES-128-GCM first).
    fn jet() -> JetConfig {
        let envelope = TestEnvelope {
            author: "romeo@montague.lit".parse().unwrap(),
        };
        JetConfig::new(
            vec![&AES128, &AES256, &CHUNKED, &CHACHA],
            vec![Arc::new(envelope)],
        )
    }

    fn features(extra: &[&str]) -> Vec<String> {
        [ns::JINGLE, ns::JET, ENVELOPE_FEATURE]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    }

    fn chosen(c: Result<CipherChoice, PeerUnfit>) -> (&'static str, bool) {
        let c = c.unwrap();
        (c.suite.urn(), c.unversioned)
    }

    #[test]
    fn a_jet_peer_that_lists_the_chunked_suite_gets_it() {
        let jet = jet();
        // What another jet advertises: every suite.
        let peer = jet.disco_features(&[ns::JINGLE_S5B, ns::JINGLE_IBB]);
        let c = jet.choose_cipher(&peer).unwrap();
        assert_eq!(
            (c.suite.urn(), c.unversioned),
            (ns::CIPHER_AES_256_GCM_CHUNKED, false)
        );
        assert_eq!(c.wire_urn(), ns::CIPHER_AES_256_GCM_CHUNKED);
        // Listed without `:0`, last: still recognized and preferred.
        let peer = features(&[
            ns::CIPHER_AES_128_GCM,
            "urn:xmpp:ciphers:aes-256-gcm-chunked:jet",
        ]);
        assert_eq!(
            chosen(jet.choose_cipher(&peer)),
            (ns::CIPHER_AES_256_GCM_CHUNKED, false)
        );
    }

    #[test]
    fn without_a_chunked_suite_the_first_of_ours_the_peer_lists() {
        let jet = jet();
        let peer = features(&[ns::CIPHER_CHACHA20_POLY1305, ns::CIPHER_AES_256_GCM]);
        assert_eq!(
            chosen(jet.choose_cipher(&peer)),
            (ns::CIPHER_AES_256_GCM, false)
        );
        // A chunked suite we do not have is not chosen.
        let ours = JetConfig {
            suites: vec![&AES128, &CHACHA],
            ..jet.clone()
        };
        let peer = features(&[ns::CIPHER_AES_256_GCM_CHUNKED, ns::CIPHER_CHACHA20_POLY1305]);
        assert_eq!(
            chosen(ours.choose_cipher(&peer)),
            (ns::CIPHER_CHACHA20_POLY1305, false)
        );
    }

    #[test]
    fn a_deployed_client_listing_no_cipher_gets_aes_128_gcm_without_its_suffix() {
        let jet = jet();
        let c = jet.choose_cipher(&features(&[])).unwrap();
        assert_eq!(
            (c.suite.urn(), c.unversioned),
            (ns::CIPHER_AES_128_GCM, true)
        );
        assert_eq!(c.wire_urn(), "urn:xmpp:ciphers:aes-128-gcm-nopadding");
        let narrowed = jet.offering(&c);
        assert_eq!(narrowed.cipher_urns(), [ns::CIPHER_AES_128_GCM]);
        assert!(narrowed.unversioned_cipher_urns);
        // Without AES-128-GCM among ours there is nothing such a peer takes.
        let ours = JetConfig {
            suites: vec![&CHUNKED],
            ..jet
        };
        assert_eq!(
            ours.choose_cipher(&features(&[])).unwrap_err(),
            PeerUnfit::NoInteropCipher
        );
    }

    #[test]
    fn an_explicit_cipher_wins_if_the_peer_can_take_it() {
        let jet = jet();
        let all = jet.disco_features(&[ns::JINGLE_IBB]);
        let c = jet.choose_cipher_as(&all, Some(&AES128)).unwrap();
        assert_eq!(
            (c.suite.urn(), c.unversioned),
            (ns::CIPHER_AES_128_GCM, false)
        );
        // A deployed client: taken as asked, unversioned.
        let c = jet
            .choose_cipher_as(&features(&[]), Some(&CHUNKED))
            .unwrap();
        assert_eq!(
            (c.suite.urn(), c.unversioned),
            (ns::CIPHER_AES_256_GCM_CHUNKED, true)
        );
        // A peer that lists ciphers, not that one: refused.
        let peer = features(&[ns::CIPHER_AES_256_GCM]);
        assert_eq!(
            jet.choose_cipher_as(&peer, Some(&CHUNKED)).unwrap_err(),
            PeerUnfit::CipherNotAdvertised(ns::CIPHER_AES_256_GCM_CHUNKED)
        );
    }

    #[test]
    fn a_peer_without_jet_or_our_envelope_is_refused() {
        let jet = jet();
        let no_jet: Vec<String> = features(&[ns::CIPHER_AES_128_GCM])
            .into_iter()
            .filter(|f| f != ns::JET)
            .collect();
        assert_eq!(jet.choose_cipher(&no_jet).unwrap_err(), PeerUnfit::NoJet);
        let no_envelope: Vec<String> = features(&[])
            .into_iter()
            .filter(|f| f != ENVELOPE_FEATURE)
            .collect();
        let e = jet.choose_cipher(&no_envelope).unwrap_err();
        assert!(
            matches!(e, PeerUnfit::EnvelopeNotAdvertised { feature, .. } if feature == ENVELOPE_FEATURE),
            "{e:?}"
        );
        let bare = JetConfig {
            envelopes: Vec::new(),
            ..jet
        };
        assert_eq!(
            bare.choose_cipher(&features(&[])).unwrap_err(),
            PeerUnfit::NoEnvelope
        );
    }

    #[test]
    fn disco_features_list_what_we_accept_and_only_that() {
        let jet = jet();
        let ibb = jet.disco_features(&[ns::JINGLE_IBB]);
        for f in [
            ns::JINGLE,
            ns::JET,
            ns::JINGLE_FT,
            ns::HASHES,
            ns::JINGLE_IBB,
            ns::IBB,
            ENVELOPE_FEATURE,
            ns::CIPHER_AES_128_GCM,
            ns::CIPHER_AES_256_GCM_CHUNKED,
        ] {
            assert!(ibb.iter().any(|x| x == f), "{f} missing from {ibb:?}");
        }
        assert!(!ibb
            .iter()
            .any(|f| f == ns::JINGLE_S5B || f == ns::BYTESTREAMS));
        let s5b = jet.disco_features(&[ns::JINGLE_S5B]);
        assert!(s5b.iter().any(|f| f == ns::BYTESTREAMS));
        assert!(!s5b.iter().any(|f| f == ns::JINGLE_IBB || f == ns::IBB));
        let mut sorted = s5b.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, s5b);
    }
}
