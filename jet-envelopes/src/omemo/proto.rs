//! The libsignal v3 wire messages, hand-encoded protobuf.
//!
//! Two small messages with scalar and bytes fields only, so a dozen lines of
//! varint code replace a protobuf toolchain (prost would need `prost-build`
//! and `protoc` or checked-in generated code for four fields each).
//!
//! ```text
//! SignalMessage       = 0x33 || protobuf { 1: ratchetKey (bytes, 0x05||u)
//!                                          2: counter (uint32)
//!                                          3: previousCounter (uint32)
//!                                          4: ciphertext (bytes) }
//!                            || MAC (8 bytes)
//! MAC = HMAC-SHA256(mac key, senderIK(33) || receiverIK(33) || 0x33 || protobuf)[..8]
//! PreKeySignalMessage = 0x33 || protobuf { 5: registrationId (uint32)
//!                                          1: preKeyId (uint32, optional)
//!                                          6: signedPreKeyId (uint32)
//!                                          2: baseKey (bytes)
//!                                          3: identityKey (bytes)
//!                                          4: message (bytes, a SignalMessage) }
//! ```
//! The version byte is `(3 << 4) | 3`: current and minimum version 3. The
//! decoder skips unknown fields, refuses wrong wire types and truncation,
//! and verifies the MAC over the bytes as received.

use subtle::ConstantTimeEq;

use super::error::{OmemoError, Result};
use super::kdf::hmac_sha256;
use super::keys::PublicKey;

/// The version byte of libsignal v3 messages.
pub const VERSION_BYTE: u8 = 0x33;
/// The length of the truncated message MAC.
pub const MAC_LEN: usize = 8;
/// Upper bound for a message we agree to parse (a key transport is ~100
/// bytes; OMEMO 0.3 ratchet payloads are at most 32 bytes plus padding).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

fn malformed(what: &str) -> OmemoError {
    OmemoError::Malformed(format!("protobuf: {what}"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_uint(out: &mut Vec<u8>, field: u32, v: u32) {
    put_varint(out, u64::from(field << 3));
    put_varint(out, u64::from(v));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    put_varint(out, u64::from((field << 3) | 2));
    put_varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// One decoded field value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| malformed("truncated varint"))?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err(malformed("varint overflow"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(malformed("truncated field"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// The next (field number, value), skipping fixed-width unknowns.
    fn next(&mut self) -> Result<Option<(u32, Value<'a>)>> {
        loop {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let key = self.varint()?;
            let field = u32::try_from(key >> 3).map_err(|_| malformed("field number"))?;
            if field == 0 {
                return Err(malformed("field number 0"));
            }
            match key & 7 {
                0 => return Ok(Some((field, Value::Varint(self.varint()?)))),
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| malformed("length"))?;
                    return Ok(Some((field, Value::Bytes(self.take(len)?))));
                }
                1 => {
                    self.take(8)?;
                }
                5 => {
                    self.take(4)?;
                }
                _ => return Err(malformed("unsupported wire type")),
            }
        }
    }
}

fn as_u32(v: Value<'_>, name: &str) -> Result<u32> {
    match v {
        Value::Varint(x) => {
            u32::try_from(x).map_err(|_| malformed(&format!("{name} out of range")))
        }
        Value::Bytes(_) => Err(malformed(&format!("{name} has the wrong wire type"))),
    }
}

fn as_bytes<'a>(v: Value<'a>, name: &str) -> Result<&'a [u8]> {
    match v {
        Value::Bytes(b) => Ok(b),
        Value::Varint(_) => Err(malformed(&format!("{name} has the wrong wire type"))),
    }
}

fn check_version(bytes: &[u8]) -> Result<&[u8]> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(malformed("message too long"));
    }
    match bytes.split_first() {
        Some((&VERSION_BYTE, rest)) => Ok(rest),
        Some((&v, _)) => Err(OmemoError::Malformed(format!(
            "unsupported message version byte {v:#04x}, expected 0x33"
        ))),
        None => Err(malformed("empty message")),
    }
}

/// A SignalMessage (one Double Ratchet message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalMessage {
    /// The sender's current ratchet public key.
    pub ratchet_key: PublicKey,
    /// Position in the sending chain.
    pub counter: u32,
    /// Length of the sender's previous sending chain.
    pub previous_counter: u32,
    /// AES-256-CBC ciphertext.
    pub ciphertext: Vec<u8>,
}

impl SignalMessage {
    /// Serializes with the version byte and appends the MAC computed with
    /// `mac_key` over the sender's and receiver's identity keys.
    pub fn encode(
        &self,
        mac_key: &[u8; 32],
        sender_ik: &PublicKey,
        receiver_ik: &PublicKey,
    ) -> Vec<u8> {
        let mut out = vec![VERSION_BYTE];
        put_bytes(&mut out, 1, &self.ratchet_key.serialize());
        put_uint(&mut out, 2, self.counter);
        put_uint(&mut out, 3, self.previous_counter);
        put_bytes(&mut out, 4, &self.ciphertext);
        let mac = compute_mac(mac_key, sender_ik, receiver_ik, &out);
        out.extend_from_slice(&mac);
        out
    }

    /// Parses a serialized message (MAC not yet checked: see
    /// [`verify_mac`]).
    pub fn decode(bytes: &[u8]) -> Result<SignalMessage> {
        if bytes.len() < 1 + MAC_LEN {
            return Err(malformed("SignalMessage too short"));
        }
        let body = check_version(&bytes[..bytes.len() - MAC_LEN])?;
        let mut r = Reader { buf: body };
        let (mut rk, mut counter, mut prev, mut ct) = (None, None, None, None);
        while let Some((field, v)) = r.next()? {
            match field {
                1 => rk = Some(PublicKey::deserialize(as_bytes(v, "ratchetKey")?)?),
                2 => counter = Some(as_u32(v, "counter")?),
                3 => prev = Some(as_u32(v, "previousCounter")?),
                4 => ct = Some(as_bytes(v, "ciphertext")?.to_vec()),
                _ => {}
            }
        }
        Ok(SignalMessage {
            ratchet_key: rk.ok_or_else(|| malformed("SignalMessage without ratchetKey"))?,
            // proto3 writers omit zero values.
            counter: counter.unwrap_or(0),
            previous_counter: prev.unwrap_or(0),
            ciphertext: ct.ok_or_else(|| malformed("SignalMessage without ciphertext"))?,
        })
    }
}

fn compute_mac(
    mac_key: &[u8; 32],
    sender_ik: &PublicKey,
    receiver_ik: &PublicKey,
    body: &[u8],
) -> [u8; MAC_LEN] {
    let full = hmac_sha256(
        mac_key,
        &[&sender_ik.serialize(), &receiver_ik.serialize(), body],
    );
    let mut mac = [0u8; MAC_LEN];
    mac.copy_from_slice(&full[..MAC_LEN]);
    mac
}

/// Checks the truncated MAC of a serialized SignalMessage, in constant time.
pub fn verify_mac(
    bytes: &[u8],
    mac_key: &[u8; 32],
    sender_ik: &PublicKey,
    receiver_ik: &PublicKey,
) -> bool {
    if bytes.len() < 1 + MAC_LEN {
        return false;
    }
    let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
    bool::from(compute_mac(mac_key, sender_ik, receiver_ik, body).ct_eq(mac))
}

/// A PreKeySignalMessage: the X3DH header around the first SignalMessage(s)
/// of a session the sender started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeySignalMessage {
    /// The sender's registration id (OMEMO does not use it; 0 when absent).
    pub registration_id: u32,
    /// The one-time prekey used, if any.
    pub pre_key_id: Option<u32>,
    /// The signed prekey used.
    pub signed_pre_key_id: u32,
    /// The sender's X3DH ephemeral ("base") key.
    pub base_key: PublicKey,
    /// The sender's identity key.
    pub identity_key: PublicKey,
    /// The serialized inner SignalMessage.
    pub message: Vec<u8>,
}

impl PreKeySignalMessage {
    /// Serializes with the version byte (the outer message has no MAC).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION_BYTE];
        if let Some(id) = self.pre_key_id {
            put_uint(&mut out, 1, id);
        }
        put_bytes(&mut out, 2, &self.base_key.serialize());
        put_bytes(&mut out, 3, &self.identity_key.serialize());
        put_bytes(&mut out, 4, &self.message);
        put_uint(&mut out, 5, self.registration_id);
        put_uint(&mut out, 6, self.signed_pre_key_id);
        out
    }

    /// Parses a serialized PreKeySignalMessage.
    pub fn decode(bytes: &[u8]) -> Result<PreKeySignalMessage> {
        let body = check_version(bytes)?;
        let mut r = Reader { buf: body };
        let (mut reg, mut pk, mut spk, mut base, mut ik, mut msg) =
            (None, None, None, None, None, None);
        while let Some((field, v)) = r.next()? {
            match field {
                1 => pk = Some(as_u32(v, "preKeyId")?),
                2 => base = Some(PublicKey::deserialize(as_bytes(v, "baseKey")?)?),
                3 => ik = Some(PublicKey::deserialize(as_bytes(v, "identityKey")?)?),
                4 => msg = Some(as_bytes(v, "message")?.to_vec()),
                5 => reg = Some(as_u32(v, "registrationId")?),
                6 => spk = Some(as_u32(v, "signedPreKeyId")?),
                _ => {}
            }
        }
        Ok(PreKeySignalMessage {
            registration_id: reg.unwrap_or(0),
            pre_key_id: pk,
            signed_pre_key_id: spk
                .ok_or_else(|| malformed("PreKeySignalMessage without signedPreKeyId"))?,
            base_key: base.ok_or_else(|| malformed("PreKeySignalMessage without baseKey"))?,
            identity_key: ik.ok_or_else(|| malformed("PreKeySignalMessage without identityKey"))?,
            message: msg.ok_or_else(|| malformed("PreKeySignalMessage without message"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(b: u8) -> PublicKey {
        PublicKey::from_bytes([b; 32])
    }

    #[test]
    fn signal_message_round_trip_and_mac() {
        let m = SignalMessage {
            ratchet_key: pk(9),
            counter: 300,
            previous_counter: 0,
            ciphertext: vec![1, 2, 3],
        };
        let key = [4u8; 32];
        let bytes = m.encode(&key, &pk(1), &pk(2));
        assert_eq!(bytes[0], 0x33);
        // field 1, length 33, then 0x05
        assert_eq!(&bytes[1..4], &[0x0a, 33, 0x05]);
        assert_eq!(SignalMessage::decode(&bytes).unwrap(), m);
        assert!(verify_mac(&bytes, &key, &pk(1), &pk(2)));
        assert!(!verify_mac(&bytes, &key, &pk(2), &pk(1)));
        let mut t = bytes.clone();
        t[10] ^= 1;
        assert!(!verify_mac(&t, &key, &pk(1), &pk(2)));
    }

    #[test]
    fn prekey_message_round_trip() {
        let m = PreKeySignalMessage {
            registration_id: 77,
            pre_key_id: Some(5),
            signed_pre_key_id: 1,
            base_key: pk(3),
            identity_key: pk(4),
            message: vec![0x33, 1, 2],
        };
        assert_eq!(PreKeySignalMessage::decode(&m.encode()).unwrap(), m);
        let none = PreKeySignalMessage {
            pre_key_id: None,
            ..m
        };
        assert_eq!(PreKeySignalMessage::decode(&none.encode()).unwrap(), none);
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let m = SignalMessage {
            ratchet_key: pk(9),
            counter: 1,
            previous_counter: 2,
            ciphertext: vec![1; 16],
        };
        let bytes = m.encode(&[0; 32], &pk(1), &pk(2));
        for n in 0..bytes.len() - MAC_LEN {
            // Every truncation of the body either fails or loses a field.
            let mut t = bytes[..n].to_vec();
            t.extend_from_slice(&[0; MAC_LEN]);
            if let Ok(d) = SignalMessage::decode(&t) {
                assert_ne!(d, m);
            }
        }
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 0x22;
        assert!(SignalMessage::decode(&wrong_version).is_err());
        assert!(SignalMessage::decode(&[]).is_err());
        assert!(PreKeySignalMessage::decode(&[
            0x33, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err());
        // Huge length prefix.
        assert!(PreKeySignalMessage::decode(&[0x33, 0x22, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // Wrong wire type for a known field.
        assert!(PreKeySignalMessage::decode(&[0x33, 0x08 | 2, 0]).is_err());
        // Group wire types are refused.
        assert!(PreKeySignalMessage::decode(&[0x33, 0x0b]).is_err());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let m = SignalMessage {
            ratchet_key: pk(9),
            counter: 0,
            previous_counter: 0,
            ciphertext: vec![],
        };
        let mut bytes = m.encode(&[0; 32], &pk(1), &pk(2));
        let mac = bytes.split_off(bytes.len() - MAC_LEN);
        put_uint(&mut bytes, 15, 7);
        bytes.extend_from_slice(&[(14 << 3) | 5, 1, 2, 3, 4]);
        bytes.extend_from_slice(&mac);
        assert_eq!(SignalMessage::decode(&bytes).unwrap(), m);
    }
}
