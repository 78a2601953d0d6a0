//! TEST-ONLY stand-ins for a cipher suite and an envelope, so jet-core can
//! test the session without depending on jet-ciphers or jet-envelopes.
//! Neither gives any security.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jid::{BareJid, Jid};
use minidom::Element;

use crate::cipher::{CipherSuite, Framing, StreamDecryptor, StreamEncryptor};
use crate::envelope::{EnvelopeBackend, OpenedEnvelope};
use crate::error::{CipherError, EnvelopeError};
use crate::secret::TransportSecret;
use crate::xml::BuilderExt;

/// TEST-ONLY "cipher": XOR with the key, plus a 4-byte checksum "tag" at the
/// end so that tampering and truncation are detected. Not encryption.
#[derive(Debug)]
pub struct TestXorSuite;

/// The one instance.
pub static TEST_XOR: TestXorSuite = TestXorSuite;

/// Its URN (deliberately not a real cipher's).
pub const TEST_XOR_URN: &str = "urn:jet:test:xor-not-a-cipher:0";

const TAG: usize = 4;

fn checksum(sum: u32, byte: u8) -> u32 {
    sum.rotate_left(5) ^ u32::from(byte)
}

impl CipherSuite for TestXorSuite {
    fn urn(&self) -> &'static str {
        TEST_XOR_URN
    }
    fn name(&self) -> &'static str {
        "test-only XOR"
    }
    fn key_len(&self) -> usize {
        16
    }
    fn iv_len(&self) -> usize {
        12
    }
    fn accepted_iv_lens(&self) -> &'static [usize] {
        &[12]
    }
    fn tag_len(&self) -> usize {
        TAG
    }
    fn framing(&self) -> Framing {
        Framing::SingleMessage {
            max_plaintext: u64::MAX - TAG as u64,
        }
    }
    fn ciphertext_len(&self, plaintext_len: u64) -> u64 {
        plaintext_len + TAG as u64
    }
    fn encryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        Ok(Box::new(XorEnc {
            key: secret.key().to_vec(),
            pos: 0,
            sum: 0,
            done: false,
        }))
    }
    fn decryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        Ok(Box::new(XorDec {
            key: secret.key().to_vec(),
            pos: 0,
            sum: 0,
            held: Vec::new(),
            done: false,
            ok: false,
        }))
    }
}

struct XorEnc {
    key: Vec<u8>,
    pos: usize,
    sum: u32,
    done: bool,
}

impl StreamEncryptor for XorEnc {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        for &b in input {
            self.sum = checksum(self.sum, b);
            out.push(b ^ self.key[self.pos % self.key.len()]);
            self.pos += 1;
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        self.done = true;
        out.extend_from_slice(&self.sum.to_be_bytes());
        Ok(())
    }
}

struct XorDec {
    key: Vec<u8>,
    pos: usize,
    sum: u32,
    /// The last TAG bytes seen (they may be the tag).
    held: Vec<u8>,
    done: bool,
    ok: bool,
}

impl StreamDecryptor for XorDec {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        self.held.extend_from_slice(input);
        if self.held.len() > TAG {
            let release = self.held.len() - TAG;
            for b in self.held.drain(..release) {
                let p = b ^ self.key[self.pos % self.key.len()];
                self.pos += 1;
                self.sum = checksum(self.sum, p);
                out.push(p);
            }
        }
        Ok(())
    }
    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        self.done = true;
        if self.held.len() < TAG {
            return Err(CipherError::Truncated);
        }
        if self.held[..] != self.sum.to_be_bytes() {
            return Err(CipherError::Authentication);
        }
        self.ok = true;
        Ok(())
    }
    fn authenticated_len(&self) -> u64 {
        if self.ok {
            self.pos as u64
        } else {
            0
        }
    }
}

/// Namespace and `type` of the test envelope.
pub const TEST_ENVELOPE: &str = "urn:jet:test:envelope-not-secure:0";

/// TEST-ONLY envelope: the secret in base64 plus a `by` attribute naming who
/// sealed it, which `open` reports as the proven sender (the way OMEMO or OX
/// would prove it). Lets tests play a third party whose envelope is replayed.
#[derive(Debug, Clone)]
pub struct TestEnvelope {
    /// Who we claim to be when sealing.
    pub author: BareJid,
}

#[async_trait]
impl EnvelopeBackend for TestEnvelope {
    fn envelope_type(&self) -> &'static str {
        TEST_ENVELOPE
    }
    fn disco_feature(&self) -> &'static str {
        "urn:jet:test:envelope-feature"
    }
    fn is_secure(&self) -> bool {
        false
    }
    async fn seal(
        &self,
        secret: &TransportSecret,
        _recipient: &Jid,
    ) -> Result<Element, EnvelopeError> {
        Ok(Element::builder("sealed", TEST_ENVELOPE)
            .a("by", self.author.to_string())
            .append(STANDARD.encode(secret.to_bytes().as_slice()))
            .build())
    }
    async fn open(
        &self,
        envelope: &Element,
        _stanza_sender: &Jid,
        suite: &dyn CipherSuite,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        if !envelope.is("sealed", TEST_ENVELOPE) {
            return Err(EnvelopeError::Malformed("not a test envelope".into()));
        }
        let by: BareJid = envelope
            .attr("by")
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| EnvelopeError::Malformed("no author".into()))?;
        let bytes = STANDARD
            .decode(envelope.text().trim())
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let secret =
            TransportSecret::from_bytes(&bytes, suite.key_len(), suite.accepted_iv_lens())?;
        Ok(OpenedEnvelope {
            secret,
            sender: by,
            sender_key: None,
        })
    }
}
