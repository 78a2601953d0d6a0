#!/usr/bin/env python3
"""Derives the known-answer vectors in jet-envelopes/tests/data/omemo_vectors.json
from python-omemo/oldmemo and python-xeddsa (independent implementations).

Run with the venv of scripts/omemo-venv:
    target/omemo-venv/bin/python jet-envelopes/tests/python/gen_vectors.py \
        > jet-envelopes/tests/data/omemo_vectors.json

All randomness is replaced by a SHA-256 counter stream, so the output is
reproducible. Vectors:
  * xeddsa: signatures by libxeddsa (python-xeddsa) with a given nonce, in
    the XEdDSA spec form (our signer must produce the same bytes) and in
    libsignal's sign-bit form (our verifier must accept both).
  * xeddsa_sign_bit: signatures in oldmemo's bundle convention (Ed25519 seed
    signature, the Ed25519 key's sign bit stored in bit 511), both signs.
  * session: python-omemo (Alice) starts a session with a fixed bundle of
    ours (Bob) and sends a message; recorded with every private key involved,
    so our X3DH + Double Ratchet can recompute the inner SignalMessage byte
    for byte and our receiving side can decrypt the element.
"""

import asyncio
import base64
import hashlib
import json
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xeddsa  # noqa: E402
from doubleratchet.recommended import diffie_hellman_ratchet_curve25519  # noqa: E402

import omemo_peer  # noqa: E402  (our peer; its handlers drive python-omemo)

COUNTER = [0]
DRAWN = []


def stream(n: int) -> bytes:
    out = b""
    while len(out) < n:
        COUNTER[0] += 1
        out += hashlib.sha256(b"jet-omemo-vectors" + COUNTER[0].to_bytes(8, "big")).digest()
    DRAWN.append(out[:n])
    return out[:n]


secrets.token_bytes = stream
secrets.choice = lambda seq: seq[int.from_bytes(stream(4), "big") % len(seq)]
secrets.randbelow = lambda n: int.from_bytes(stream(8), "big") % n
diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet._generate_priv = staticmethod(lambda: stream(32))


def h(b: bytes) -> str:
    return b.hex()


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def clamp(k: bytes) -> bytes:
    c = bytearray(k)
    c[0] &= 248
    c[31] &= 127
    c[31] |= 64
    return bytes(c)


def xeddsa_vectors():
    """XEdDSA signatures by libxeddsa: with the key forced to Ed25519 sign 0
    (the XEdDSA spec form, bit 511 clear) and with the key as it is plus the
    sign bit in bit 511 (libsignal's form)."""
    out = []
    seen = set()
    while len(seen) < 2 or len(out) < 6:
        priv = clamp(stream(32))
        ed_pub = xeddsa.priv_to_ed25519_pub(priv)
        bit = ed_pub[31] >> 7
        if len(out) >= 4 and len(seen) < 2 and bit in seen:
            continue
        seen.add(bit)
        msg = b"\x05" + stream(32) if len(out) % 2 == 0 else b"jet " * len(out)
        nonce = stream(64)
        spec_sig = xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(priv, False), msg, nonce)
        raw_sig = bytearray(xeddsa.ed25519_priv_sign(priv, msg, nonce))
        assert xeddsa.ed25519_verify(bytes(raw_sig), ed_pub, msg)
        raw_sig[63] |= ed_pub[31] & 0x80
        out.append({
            "priv": h(priv),
            "nonce": h(nonce),
            "pub": h(xeddsa.priv_to_curve25519_pub(priv)),
            "msg": h(msg),
            "sig_spec": h(spec_sig),
            "sig_sign_bit": h(bytes(raw_sig)),
            "ed25519_sign_bit": bit,
        })
    return out


def sign_bit_vectors():
    out = []
    seen = set()
    while len(seen) < 2 or len(out) < 4:
        seed = stream(32)
        ed_pub = xeddsa.seed_to_ed25519_pub(seed)
        bit = ed_pub[31] >> 7
        if len(out) >= 2 and len(seen) < 2 and bit in seen:
            continue
        seen.add(bit)
        msg = b"\x05" + stream(32)
        sig = bytearray(xeddsa.ed25519_seed_sign(seed, msg))
        sig[63] |= ed_pub[31] & 0x80
        out.append({
            "pub": h(xeddsa.ed25519_pub_to_curve25519_pub(ed_pub)),
            "msg": h(msg),
            "sig": h(bytes(sig)),
            "ed25519_sign_bit": bit,
        })
    return out


def pub(priv: bytes) -> bytes:
    return xeddsa.priv_to_curve25519_pub(priv)


async def session_vector():
    bob = {
        "jid": "bob@jet.example",
        "device_id": 4242,
        "identity_priv": clamp(stream(32)),
        "spk_id": 7,
        "spk_priv": clamp(stream(32)),
        "opk_id": 31,
        "opk_priv": clamp(stream(32)),
    }
    spk_pub = pub(bob["spk_priv"])
    # oldmemo's bundle convention: the Ed25519 key's sign bit in bit 511.
    sig = bytearray(xeddsa.ed25519_priv_sign(bob["identity_priv"], b"\x05" + spk_pub, stream(64)))
    sig[63] |= xeddsa.priv_to_ed25519_pub(bob["identity_priv"])[31] & 0x80
    sig = bytes(sig)
    ns = "eu.siacs.conversations.axolotl"
    spk_b64 = b64(b"\x05" + spk_pub)
    ik_b64 = b64(b"\x05" + pub(bob["identity_priv"]))
    opk_b64 = b64(b"\x05" + pub(bob["opk_priv"]))
    bundle = (
        f"<bundle xmlns='{ns}'>"
        f"<signedPreKeyPublic signedPreKeyId='{bob['spk_id']}'>{spk_b64}</signedPreKeyPublic>"
        f"<signedPreKeySignature>{b64(sig)}</signedPreKeySignature>"
        f"<identityKey>{ik_b64}</identityKey>"
        f"<prekeys><preKeyPublic preKeyId='{bob['opk_id']}'>{opk_b64}</preKeyPublic></prekeys>"
        "</bundle>"
    )
    alice_jid = "alice@jet.example"
    init = await omemo_peer.handle({"cmd": "init", "jid": alice_jid})
    await omemo_peer.handle({"cmd": "add_peer", "jid": bob["jid"], "device_id": bob["device_id"], "bundle": bundle})
    plaintext = b"JET says hello"
    msg = await omemo_peer.handle({"cmd": "encrypt", "to": bob["jid"], "plaintext": b64(plaintext)})
    assert "error" not in msg, msg

    # Find Alice's private keys among the drawn random values by matching
    # the public keys in the PreKeySignalMessage.
    import xml.etree.ElementTree as ET
    el = ET.fromstring(msg["xml"])
    key = el.find(f"{{{ns}}}header/{{{ns}}}key")
    pkm = base64.b64decode(key.text)
    from oldmemo import oldmemo_pb2
    parsed = oldmemo_pb2.OMEMOKeyExchange.FromString(pkm[1:])
    inner = parsed.message
    inner_msg = oldmemo_pb2.OMEMOMessage.FromString(inner[1:-8])

    def find(target, derive):
        for d in DRAWN:
            if len(d) == 32 and derive(d) == target:
                return d
        raise SystemExit("private key not found")

    identity_priv = xeddsa.seed_to_priv(find(parsed.ik[1:], lambda s: pub(xeddsa.seed_to_priv(s))))
    base_priv = find(parsed.ek[1:], pub)
    ratchet_priv = find(inner_msg.dh_pub[1:], pub)
    return {
        "bob": {k: (h(v) if isinstance(v, bytes) else v) for k, v in bob.items()},
        "bob_bundle": bundle,
        "alice": {
            "jid": alice_jid,
            "device_id": init["device_id"],
            "identity_priv": h(identity_priv),
            "base_priv": h(base_priv),
            "ratchet_priv": h(ratchet_priv),
        },
        "plaintext": h(plaintext),
        "key_material": h(base64.b64decode(msg["key_material"])),
        "xml": msg["xml"],
        "prekey_message": h(pkm),
        "inner_signal_message": h(inner),
    }


async def main():
    vectors = {
        "generator": "jet-envelopes/tests/python/gen_vectors.py",
        "python_omemo": __import__("omemo").__version__,
        "oldmemo": __import__("oldmemo").__version__,
        "xeddsa_version": __import__("xeddsa").__version__,
        "xeddsa": xeddsa_vectors(),
        "xeddsa_sign_bit": sign_bit_vectors(),
        "session": await session_vector(),
    }
    json.dump(vectors, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")


asyncio.run(main())
