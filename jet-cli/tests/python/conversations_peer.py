#!/usr/bin/env python3
"""A Conversations-shaped Jingle file transfer peer with JET, for jet's tests.

Not jet's code and not Conversations' code: an independent implementation,
written from how Conversations (2.1x, `JingleFileTransferConnection`,
`SocksByteStreamsTransport`, `InbandBytestreamsTransport`, `Content`,
`FileTransferDescription`) behaves on the wire, so that jet is tested against
that behaviour (docs/conversations.md). It uses XEP-0391's stub envelope
(`urn:xmpp:encryption:stub:0`, base64(key || iv) in the clear) instead of
OMEMO: the subject is the Jingle / JET / transport behaviour.

What it does as Conversations does:
  sender (initiator): `<file>` with name, size (plaintext), mediaType and no
    hash; `<security name=CONTENT cipher='urn:xmpp:ciphers:aes-128-gcm-nopadding'>`;
    one AES-128-GCM message over the file, 12-byte IV, 16-byte tag appended
    (size + 16 bytes on the wire); after the data `session-info <checksum/>`
    with SHA-1 and SHA-256 of those wire bytes (the CIPHERTEXT); then it keeps
    the transport open (no socket close, no IBB <close/>) until the receiver's
    session-terminate.
  receiver (responder): reads exactly size + 16 bytes (never waits for EOF),
    checks the tag (Conversations does not, really: see the docs), sends
    `session-info <received/>`, closes the transport (no IBB <close/>) and
    sends `session-terminate <success/>`.
  S5B: one direct candidate on 127.0.0.1 (priority 126 << 16), DST.ADDR =
    SHA-1(sid + offerer + peer), candidate-used / candidate-error, higher
    priority wins, the initiator's choice on a tie; a proxy candidate of the
    peer is used after its <activated/>. It offers no proxy of its own.
  IBB: block-size at most 8192, three blocks in flight, seq from 0.

Loopback only: it listens on 127.0.0.1 and connects to no candidate whose
host is not a loopback address literal. Every wait is bounded by --timeout.

Usage:
  conversations_peer.py send FILE --peer FULLJID --transport s5b|ibb \
      --server 127.0.0.1:PORT --ca CA.pem --jid USER@DOMAIN [--password-env VAR]
  conversations_peer.py receive DIR --peer JID ... (same options)
  conversations_peer.py selftest     (offline checks of the wire format)
  conversations_peer.py seal IN OUT  (the wire bytes for IN, key and IV printed)

It prints JSON lines on stdout: {"event": "ready", "jid": ...} once logged in,
then one final {"event": "done", ...} or {"event": "error", ...}; the exit
status is 0 only for a successful transfer.
"""

import argparse
import asyncio
import base64
import hashlib
import ipaddress
import json
import logging
import mimetypes
import os
import secrets
import sys
import time
import uuid
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

NS_JINGLE = "urn:xmpp:jingle:1"
NS_FT = "urn:xmpp:jingle:apps:file-transfer:5"
NS_FT3 = "urn:xmpp:jingle:apps:file-transfer:3"
NS_FT4 = "urn:xmpp:jingle:apps:file-transfer:4"
NS_S5B = "urn:xmpp:jingle:transports:s5b:1"
NS_JIBB = "urn:xmpp:jingle:transports:ibb:1"
NS_IBB = "http://jabber.org/protocol/ibb"
NS_JET = "urn:xmpp:jingle:jet:0"
NS_STUB = "urn:xmpp:encryption:stub:0"
FEATURE_JET_STUB = "urn:xmpp:jingle:jet-stub:0"
NS_HASHES = "urn:xmpp:hashes:2"
NS_ERRORS = "urn:xmpp:jingle:errors:1"
# Conversations writes and accepts exactly this string (no ":0").
CIPHER = "urn:xmpp:ciphers:aes-128-gcm-nopadding"
TAG_LEN = 16
KEY_LEN = 16
IV_LEN = 12
IBB_MAX_BLOCK = 8192
IBB_IN_FLIGHT = 3
DIRECT_PRIORITY = 126 << 16  # 8257536, Conversations' direct candidates
CONNECT_TIMEOUT = 3.0

# The features Conversations advertises for Jingle file transfer, with the
# stub envelope's JET feature in place of jet-omemo.
FEATURES = [
    NS_JINGLE,
    NS_FT3,
    NS_FT4,
    NS_FT,
    NS_S5B,
    NS_JIBB,
    NS_JET,
    FEATURE_JET_STUB,
    "http://jabber.org/protocol/caps",
    "urn:xmpp:caps",
    "urn:xmpp:ping",
    "jabber:iq:version",
]

log = logging.getLogger("conversations-peer")


class Failure(Exception):
    """The transfer failed; `reason` is the Jingle reason element's name."""

    def __init__(self, reason, text):
        super().__init__(text)
        self.reason = reason
        self.text = text


# ---------------------------------------------------------------- wire format


def dst_addr(sid, offerer, peer):
    """XEP-0260 DST.ADDR: hex SHA-1 of sid + the offerer's + the peer's full JID."""
    return hashlib.sha1((sid + offerer + peer).encode("utf-8")).hexdigest()


class Sealer:
    """One AES-128-GCM message over the whole stream, tag appended; hashes
    what it hands out (the wire bytes), as Conversations' FileTransmitter."""

    def __init__(self, key, iv):
        self.enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        self.sha1 = hashlib.sha1()
        self.sha256 = hashlib.sha256()

    def _out(self, b):
        self.sha1.update(b)
        self.sha256.update(b)
        return b

    def update(self, plain):
        return self._out(self.enc.update(plain))

    def finish(self, corrupt_tag=False):
        rest = self.enc.finalize()
        tag = self.enc.tag
        if corrupt_tag:  # a test of the receiver: one bit of the tag flipped
            tag = tag[:-1] + bytes([tag[-1] ^ 1])
        return self._out(rest + tag)


class Opener:
    """The receiving side: `total` = size + 16 wire bytes, the last 16 the tag.
    Plaintext comes out unauthenticated until `finish` checks the tag."""

    def __init__(self, key, iv, size):
        self.dec = Cipher(algorithms.AES(key), modes.GCM(iv)).decryptor()
        self.size = size
        self.seen = 0
        self.tag = b""
        self.wire_sha1 = hashlib.sha1()
        self.wire_sha256 = hashlib.sha256()
        self.plain_sha256 = hashlib.sha256()

    def update(self, data):
        self.wire_sha1.update(data)
        self.wire_sha256.update(data)
        body = b""
        if self.seen < self.size:
            n = min(len(data), self.size - self.seen)
            body = data[:n]
            data = data[n:]
        self.seen += len(body)
        self.tag += data
        if len(self.tag) > TAG_LEN:
            raise Failure("failed-application", "more than size + 16 bytes")
        out = self.dec.update(body)
        self.plain_sha256.update(out)
        return out

    def finish(self):
        if self.seen != self.size or len(self.tag) != TAG_LEN:
            raise Failure("failed-transport", "short stream")
        try:
            out = self.dec.finalize_with_tag(self.tag)
        except Exception as e:  # cryptography's InvalidTag
            raise Failure("security-error", f"the GCM tag does not verify: {e!r}")
        self.plain_sha256.update(out)
        return out


def selftest():
    """Offline checks: the streaming sealer equals one-shot AES-GCM, the opener
    inverts it and refuses a flipped bit, DST.ADDR matches XEP-0260's vector."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    failures = []

    def check(what, ok):
        if not ok:
            failures.append(what)

    check(
        "dst.addr vector",
        dst_addr("vj3hs98y", "romeo@montague.lit/orchard", "juliet@capulet.lit/balcony")
        == "972b7bf47291ca609517f67f86b5081086052dad",
    )
    check(
        "dst.addr reverse vector",
        dst_addr("vj3hs98y", "juliet@capulet.lit/balcony", "romeo@montague.lit/orchard")
        == "1a12fb7bc625e55f3ed5b29a53dbe0e4aa7d80ba",
    )
    for size in (0, 1, 15, 16, 17, 4095, 70000):
        key, iv = os.urandom(KEY_LEN), os.urandom(IV_LEN)
        plain = os.urandom(size)
        s = Sealer(key, iv)
        wire = b"".join(s.update(plain[i : i + 1000]) for i in range(0, size, 1000)) + s.finish()
        check(f"{size}: wire = plaintext + 16", len(wire) == size + TAG_LEN)
        check(f"{size}: one-shot equality", wire == AESGCM(key).encrypt(iv, plain, None))
        check(f"{size}: sha-1 over the wire", s.sha1.digest() == hashlib.sha1(wire).digest())
        check(f"{size}: sha-256 over the wire", s.sha256.digest() == hashlib.sha256(wire).digest())
        o = Opener(key, iv, size)
        got = b"".join(o.update(wire[i : i + 777]) for i in range(0, len(wire), 777)) + o.finish()
        check(f"{size}: round trip", got == plain)
        check(f"{size}: plaintext hash", o.plain_sha256.digest() == hashlib.sha256(plain).digest())
        bad = bytearray(wire)
        bad[len(bad) // 2] ^= 1
        o = Opener(key, iv, size)
        try:
            o.update(bytes(bad))
            o.finish()
            check(f"{size}: flipped bit refused", False)
        except Failure as e:
            check(f"{size}: flipped bit refused", e.reason == "security-error")
    return failures


# ---------------------------------------------------------------- XML helpers


def el(tag, attrs=None, text=None, children=()):
    e = ET.Element(tag, {k: str(v) for k, v in (attrs or {}).items()})
    if text is not None:
        e.text = text
    for c in children:
        e.append(c)
    return e


def reason_el(name, text=None):
    kids = [el(f"{{{NS_JINGLE}}}{name}")]
    if text:
        kids.append(el(f"{{{NS_JINGLE}}}text", text=text))
    return el(f"{{{NS_JINGLE}}}reason", children=kids)


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- SOCKS5


async def socks5_connect(host, port, dst, timeout):
    """SOCKS5 CONNECT with ATYP=3 DST.ADDR=dst, port 0 (XEP-0260)."""
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        w.write(b"\x05\x01\x00")
        await w.drain()
        if await asyncio.wait_for(r.readexactly(2), timeout) != b"\x05\x00":
            raise ConnectionError("SOCKS5 method refused")
        d = dst.encode()
        w.write(b"\x05\x01\x00\x03" + bytes([len(d)]) + d + b"\x00\x00")
        await w.drain()
        head = await asyncio.wait_for(r.readexactly(5), timeout)
        if head[:2] != b"\x05\x00":
            raise ConnectionError(f"SOCKS5 connect refused: {head[1]}")
        if head[3] == 3:
            await asyncio.wait_for(r.readexactly(head[4] + 2), timeout)
        elif head[3] == 1:
            await asyncio.wait_for(r.readexactly(4 + 2 - 1), timeout)
        else:
            await asyncio.wait_for(r.readexactly(16 + 2 - 1), timeout)
        return r, w
    except BaseException:
        w.close()
        raise


async def socks5_serve(r, w, expected_dst, timeout):
    """Our side of a direct candidate; True when DST.ADDR is ours."""
    head = await asyncio.wait_for(r.readexactly(2), timeout)
    if head[0] != 5:
        return False
    methods = await asyncio.wait_for(r.readexactly(head[1]), timeout)
    if 0 not in methods:
        w.write(b"\x05\xff")
        await w.drain()
        return False
    w.write(b"\x05\x00")
    await w.drain()
    req = await asyncio.wait_for(r.readexactly(4), timeout)
    if req[0] != 5 or req[1] != 1 or req[3] != 3:
        return False
    n = (await asyncio.wait_for(r.readexactly(1), timeout))[0]
    dst = await asyncio.wait_for(r.readexactly(n), timeout)
    port = await asyncio.wait_for(r.readexactly(2), timeout)
    ok = dst.decode("ascii", "replace") == expected_dst
    w.write(bytes([5, 0 if ok else 4, 0, 3, n]) + dst + port)
    await w.drain()
    return ok


# ---------------------------------------------------------------- the peer


class Peer:
    def __init__(self, args):
        from slixmpp import ClientXMPP
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        self.args = args
        self.deadline = time.monotonic() + args.timeout
        resource = "Conversations." + secrets.token_hex(2)
        password = os.environ.get(args.password_env, "")
        self.x = ClientXMPP(f"{args.jid}/{resource}", password)
        self.x.ca_certs = args.ca
        # StartTLS on the c2s port, as the test server wants (no direct TLS).
        self.x.enable_direct_tls = False
        self.x.enable_starttls = True
        self.x.enable_plaintext = False
        self.x.register_plugin("xep_0030")
        for f in FEATURES:
            self.x.plugin["xep_0030"].add_feature(f)
        self.x.plugin["xep_0030"].add_identity("client", "phone", name="Conversations")
        self.started = asyncio.get_event_loop().create_future()
        self.x.add_event_handler("session_start", self._on_start)
        self.x.add_event_handler("failed_auth", lambda *_: self._fail_start("authentication failed"))
        self.x.add_event_handler(
            "connection_failed", lambda e: self._fail_start(f"connection failed: {e}")
        )
        c = self.x.default_ns
        for name, path, cb in (
            ("jingle", f"{{{NS_JINGLE}}}jingle", self._on_jingle),
            ("ibb-open", f"{{{NS_IBB}}}open", self._on_ibb),
            ("ibb-data", f"{{{NS_IBB}}}data", self._on_ibb),
            ("ibb-close", f"{{{NS_IBB}}}close", self._on_ibb),
        ):
            self.x.register_handler(Callback(name, MatchXPath(f"{{{c}}}iq/{path}"), cb))
        # Session state (one session per run).
        self.jingle_q = asyncio.Queue()
        self.sid = None
        self.content = None
        self.peer = None
        self.ibb = None  # {"sid", "block", "queue", "seq", "open"}
        self.s5b_theirs_used = None  # future: ("used", cid) / ("error",)
        self.s5b_activated = None  # future: cid
        self.peer_checksums = []
        self.peer_received = False

    # -- plumbing

    def left(self):
        t = self.deadline - time.monotonic()
        if t <= 0:
            raise Failure("timeout", f"no result within --timeout {self.args.timeout}s")
        return t

    async def bounded(self, aw, what):
        try:
            return await asyncio.wait_for(aw, self.left())
        except asyncio.TimeoutError:
            raise Failure("timeout", f"timed out waiting for {what}")

    def _on_start(self, _):
        self.x.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def _fail_start(self, why):
        if not self.started.done():
            self.started.set_exception(Failure("connectivity-error", why))

    @property
    def me(self):
        return str(self.x.boundjid.full)

    async def iq_set(self, payload, what):
        from slixmpp.exceptions import IqError, IqTimeout

        iq = self.x.make_iq_set(ito=self.peer)
        iq.append(payload)
        try:
            return await iq.send(timeout=max(0.5, min(self.left(), 10)))
        except IqError as e:
            raise Failure("failed-application", f"{what} answered with an error: {e.iq['error']['condition']}")
        except IqTimeout:
            raise Failure("timeout", f"no answer to {what}")

    def jingle(self, action, *children, **extra):
        attrs = {"action": action, "sid": self.sid}
        attrs.update(extra)
        return el(f"{{{NS_JINGLE}}}jingle", attrs, children=children)

    async def send_jingle(self, action, *children, **extra):
        return await self.iq_set(self.jingle(action, *children, **extra), action)

    async def terminate(self, reason, text=None):
        try:
            await self.send_jingle("session-terminate", reason_el(reason, text))
        except Failure as e:
            log.warning("session-terminate: %s", e.text)

    # -- incoming stanzas

    def _on_jingle(self, iq):
        j = iq.xml.find(f"{{{NS_JINGLE}}}jingle")
        action = j.get("action")
        if self.sid is None and action == "session-initiate" and self.args.role == "receive":
            if not self._from_peer(iq):
                self._iq_error(iq, "cancel", "service-unavailable")
                return
            self.sid = j.get("sid")
            self.peer = str(iq["from"])
        elif j.get("sid") != self.sid or str(iq["from"]) != self.peer:
            self._iq_error(iq, "cancel", "item-not-found", unknown_session=True)
            return
        iq.reply(clear=True).send()
        if action == "transport-info":
            self._transport_info(j)
        elif action == "session-info":
            self._session_info(j)
        else:
            self.jingle_q.put_nowait((action, j))

    def _from_peer(self, iq):
        want = self.args.peer
        got = str(iq["from"])
        return got == want or got.split("/")[0] == want

    def _iq_error(self, iq, etype, cond, unknown_session=False):
        r = iq.reply(clear=True)
        r["type"] = "error"
        r["error"]["type"] = etype
        r["error"]["condition"] = cond
        if unknown_session:
            r["error"].xml.append(el(f"{{{NS_ERRORS}}}unknown-session"))
        r.send()

    def _transport_info(self, j):
        t = j.find(f"{{{NS_JINGLE}}}content/{{{NS_S5B}}}transport")
        if t is None:
            return
        used = t.find(f"{{{NS_S5B}}}candidate-used")
        if used is not None and self.s5b_theirs_used and not self.s5b_theirs_used.done():
            self.s5b_theirs_used.set_result(("used", used.get("cid")))
        if t.find(f"{{{NS_S5B}}}candidate-error") is not None and self.s5b_theirs_used and not self.s5b_theirs_used.done():
            self.s5b_theirs_used.set_result(("error", None))
        act = t.find(f"{{{NS_S5B}}}activated")
        if act is not None and self.s5b_activated and not self.s5b_activated.done():
            self.s5b_activated.set_result(act.get("cid"))
        if t.find(f"{{{NS_S5B}}}proxy-error") is not None and self.s5b_activated and not self.s5b_activated.done():
            self.s5b_activated.set_exception(Failure("connectivity-error", "the peer's proxy failed"))

    def _session_info(self, j):
        cs = j.find(f"{{{NS_FT}}}checksum")
        if cs is not None:
            for h in cs.iter(f"{{{NS_HASHES}}}hash"):
                self.peer_checksums.append({"algo": h.get("algo"), "value": (h.text or "").strip()})
        if j.find(f"{{{NS_FT}}}received") is not None:
            self.peer_received = True

    def _on_ibb(self, iq):
        x = iq.xml
        node = x[0] if len(x) else None
        ib = self.ibb
        if node is None or ib is None or node.get("sid") != ib["sid"] or str(iq["from"]) != self.peer:
            self._iq_error(iq, "cancel", "item-not-found")
            return
        name = node.tag.split("}")[1]
        if name == "open":
            blk = int(node.get("block-size", "0") or 0)
            if blk <= 0 or blk > ib["block"]:
                self._iq_error(iq, "modify", "resource-constraint")
                return
            ib["open"] = True
            iq.reply(clear=True).send()
            ib["queue"].put_nowait(("open", None))
        elif name == "data":
            seq = int(node.get("seq", "-1"))
            if not ib.get("open") or seq != ib["seq"]:
                self._iq_error(iq, "cancel", "unexpected-request")
                ib["queue"].put_nowait(("error", f"IBB seq {seq}, expected {ib['seq']}"))
                return
            ib["seq"] = (ib["seq"] + 1) % 65536
            try:
                data = base64.b64decode((node.text or "").strip(), validate=True)
            except ValueError:
                self._iq_error(iq, "cancel", "bad-request")
                ib["queue"].put_nowait(("error", "IBB data is not base64"))
                return
            iq.reply(clear=True).send()
            ib["queue"].put_nowait(("data", data))
        else:  # close
            iq.reply(clear=True).send()
            ib["queue"].put_nowait(("close", None))

    async def pending_terminate(self, grace):
        """A session-terminate already received or arriving within `grace`."""
        end = time.monotonic() + grace
        while True:
            left = min(end - time.monotonic(), self.deadline - time.monotonic())
            if left <= 0:
                return None
            try:
                action, j = await asyncio.wait_for(self.jingle_q.get(), left)
            except asyncio.TimeoutError:
                return None
            if action == "session-terminate":
                return j

    async def next_jingle(self, *wanted):
        while True:
            action, j = await self.bounded(self.jingle_q.get(), " or ".join(wanted))
            if action == "session-terminate" and "session-terminate" not in wanted:
                r = j.find(f"{{{NS_JINGLE}}}reason")
                name = r[0].tag.split("}")[1] if r is not None and len(r) else "none"
                raise Failure(name, f"the peer terminated the session ({name})")
            if action in wanted:
                return action, j
            log.info("ignoring %s", action)

    # -- S5B

    async def s5b_prepare(self, tsid):
        """Listens on 127.0.0.1 (our one direct candidate)."""
        self.s5b = {
            "sid": tsid,
            "cid": str(uuid.uuid4()),
            "accepted": asyncio.get_event_loop().create_future(),
            # DST.ADDR a client of our candidate must ask for (XEP-0260).
            "our_dst": dst_addr(tsid, self.me, self.peer),
        }
        self.s5b_theirs_used = asyncio.get_event_loop().create_future()
        self.s5b_activated = asyncio.get_event_loop().create_future()

        async def handle(r, w):
            try:
                ok = await socks5_serve(r, w, self.s5b["our_dst"], CONNECT_TIMEOUT)
            except Exception as e:
                log.info("SOCKS5 client failed: %r", e)
                ok = False
            if ok and not self.s5b["accepted"].done():
                self.s5b["accepted"].set_result((r, w))
            else:
                w.close()

        self.s5b["server"] = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.s5b["port"] = self.s5b["server"].sockets[0].getsockname()[1]

    def s5b_transport_el(self):
        s = self.s5b
        cand = el(
            f"{{{NS_S5B}}}candidate",
            {
                "cid": s["cid"],
                "host": "127.0.0.1",
                "jid": self.me,
                "port": s["port"],
                "priority": DIRECT_PRIORITY,
                "type": "direct",
            },
        )
        return el(f"{{{NS_S5B}}}transport", {"sid": s["sid"]}, children=[cand])

    async def s5b_establish(self, their_transport, initiator):
        s = self.s5b
        their_dst = dst_addr(s["sid"], self.peer, self.me)
        theirs = []
        for c in their_transport.findall(f"{{{NS_S5B}}}candidate"):
            try:
                theirs.append(
                    {
                        "cid": c.get("cid"),
                        "host": c.get("host"),
                        "port": int(c.get("port", "1080")),
                        "priority": int(c.get("priority", "0")),
                        "type": c.get("type", "direct"),
                        "jid": c.get("jid"),
                    }
                )
            except ValueError:
                log.info("skipping a broken candidate")
        theirs.sort(key=lambda c: -c["priority"])
        ours_conn = None  # (candidate, reader, writer): we connected to theirs
        for c in theirs:
            if not is_loopback(c["host"]):
                log.info("not connecting to %s: not a loopback address", c["host"])
                continue
            # A candidate of ours that the peer already chose and that beats
            # anything left: stop trying (as Conversations does).
            if self.s5b_theirs_used.done():
                kind, cid = self.s5b_theirs_used.result()
                if kind == "used" and cid == s["cid"] and DIRECT_PRIORITY > c["priority"]:
                    break
            try:
                r, w = await socks5_connect(c["host"], c["port"], their_dst, min(CONNECT_TIMEOUT, self.left()))
                ours_conn = (c, r, w)
                break
            except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                log.info("candidate %s failed: %r", c["cid"], e)
        tr = el(f"{{{NS_S5B}}}transport", {"sid": s["sid"]})
        if ours_conn:
            tr.append(el(f"{{{NS_S5B}}}candidate-used", {"cid": ours_conn[0]["cid"]}))
        else:
            tr.append(el(f"{{{NS_S5B}}}candidate-error"))
        await self.send_jingle("transport-info", self.content_el(tr))
        kind, cid = await self.bounded(asyncio.shield(self.s5b_theirs_used), "the peer's candidate-used/error")
        theirs_conn = None
        if kind == "used":
            if cid != s["cid"]:
                raise Failure("failed-transport", f"the peer used an unknown candidate {cid}")
            r, w = await self.bounded(asyncio.shield(s["accepted"]), "the peer's SOCKS5 connection")
            theirs_conn = (r, w)
        # Nomination: higher priority wins, the initiator's choice on a tie.
        if ours_conn and theirs_conn:
            p_us, p_them = ours_conn[0]["priority"], DIRECT_PRIORITY
            use_ours = p_us > p_them or (p_us == p_them and initiator)
        elif ours_conn or theirs_conn:
            use_ours = ours_conn is not None
        else:
            raise Failure("connectivity-error", "no S5B candidate worked in either direction")
        if use_ours:
            c, r, w = ours_conn
            if theirs_conn:
                theirs_conn[1].close()
            if c["type"] == "proxy":
                got = await self.bounded(asyncio.shield(self.s5b_activated), "the peer's <activated/>")
                if got != c["cid"]:
                    raise Failure("failed-transport", f"activated {got}, expected {c['cid']}")
            s["selected"] = f"theirs:{c['type']}"
        else:
            r, w = theirs_conn
            if ours_conn:
                ours_conn[2].close()
            s["selected"] = "ours:direct"
        s["server"].close()
        self.conn = (r, w)
        return r, w

    # -- the content element

    def content_el(self, *children):
        return el(
            f"{{{NS_JINGLE}}}content",
            {"creator": "initiator", "name": self.content, "senders": "initiator"},
            children=children,
        )

    # -- roles

    async def run(self):
        host, port = self.args.server.rsplit(":", 1)
        self.x.connect(host, int(port))
        await self.bounded(self.started, "login")
        print(json.dumps({"event": "ready", "jid": self.me}), flush=True)
        if self.args.role == "send":
            return await self.send_file()
        return await self.receive_file()

    async def send_file(self):
        a = self.args
        path = a.path
        size = os.path.getsize(path)
        name = os.path.basename(path)
        self.peer = a.peer
        if "/" not in self.peer:
            raise Failure("failed-application", "--peer must be a full JID for send")
        self.sid = str(uuid.uuid4())
        self.content = str(uuid.uuid4())
        key, iv = os.urandom(KEY_LEN), os.urandom(IV_LEN)
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        desc = el(
            f"{{{NS_FT}}}description",
            children=[
                el(
                    f"{{{NS_FT}}}file",
                    children=[
                        el(f"{{{NS_FT}}}name", text=name),
                        el(f"{{{NS_FT}}}size", text=str(size)),
                        el(f"{{{NS_FT}}}mediaType", text=mime),
                    ],
                )
            ],
        )
        if a.transport == "s5b":
            await self.s5b_prepare(str(uuid.uuid4()))
            transport = self.s5b_transport_el()
        else:
            self.ibb = {"sid": str(uuid.uuid4()), "block": IBB_MAX_BLOCK, "queue": asyncio.Queue(), "seq": 0}
            transport = el(f"{{{NS_JIBB}}}transport", {"block-size": IBB_MAX_BLOCK, "sid": self.ibb["sid"]})
        security = el(
            f"{{{NS_JET}}}security",
            {"name": self.content, "cipher": CIPHER, "type": NS_STUB},
            children=[
                el(
                    f"{{{NS_STUB}}}encrypted",
                    children=[el(f"{{{NS_STUB}}}payload", text=base64.b64encode(key + iv).decode())],
                )
            ],
        )
        await self.send_jingle(
            "session-initiate", self.content_el(desc, transport, security), initiator=self.me
        )
        _, accept = await self.next_jingle("session-accept")
        t_start = time.monotonic()
        sealer = Sealer(key, iv)
        try:
            if a.transport == "s5b":
                t = accept.find(f"{{{NS_JINGLE}}}content/{{{NS_S5B}}}transport")
                if t is None:
                    raise Failure("failed-application", "session-accept without an S5B transport")
                r, w = await self.s5b_establish(t, initiator=True)
                with open(path, "rb") as f:
                    while chunk := f.read(16384):
                        w.write(sealer.update(chunk))
                        await self.bounded(w.drain(), "the socket")
                w.write(sealer.finish(self.args.corrupt_tag))
                await self.bounded(w.drain(), "the socket")
            else:
                t = accept.find(f"{{{NS_JINGLE}}}content/{{{NS_JIBB}}}transport")
                if t is None:
                    raise Failure("failed-application", "session-accept without an IBB transport")
                block = min(IBB_MAX_BLOCK, int(t.get("block-size", IBB_MAX_BLOCK)))
                await self.iq_set(el(f"{{{NS_IBB}}}open", {"block-size": block, "sid": self.ibb["sid"]}), "IBB open")
                await self.ibb_send(path, sealer, block)
            # The checksum over what went on the wire, then wait, transport open.
            checksum = el(
                f"{{{NS_FT}}}checksum",
                {"name": self.content},
                children=[
                    el(
                        f"{{{NS_FT}}}file",
                        children=[
                            el(f"{{{NS_HASHES}}}hash", {"algo": "sha-1"}, base64.b64encode(sealer.sha1.digest()).decode()),
                            el(f"{{{NS_HASHES}}}hash", {"algo": "sha-256"}, base64.b64encode(sealer.sha256.digest()).decode()),
                        ],
                    )
                ],
            )
            # Sent without waiting for its answer, as Conversations does: the
            # receiver's session-terminate ends the session whatever becomes
            # of this IQ (a receiver that refused and went offline at once
            # may never answer it).
            checksum_iq = asyncio.ensure_future(self.send_jingle("session-info", checksum))
            try:
                _, term = await self.next_jingle("session-terminate")
            finally:
                if checksum_iq.done():
                    checksum_iq.exception()  # seen: the terminate decides
                else:
                    checksum_iq.cancel()
        except (Failure, OSError):
            # The receiver may end the session while we still write, or
            # before our checksum reaches it (a refusal, or its verdict
            # crossing our session-info): then its terminate is the outcome.
            term = await self.pending_terminate(2.0)
            if term is None:
                raise
        r = term.find(f"{{{NS_JINGLE}}}reason")
        reason = r[0].tag.split("}")[1] if r is not None and len(r) else "none"
        if getattr(self, "conn", None):
            self.conn[1].close()
        plain_sha = hashlib.sha256(open(path, "rb").read()).digest()
        result = {
            "event": "done" if reason == "success" else "error",
            "role": "send",
            "transport": a.transport,
            "outcome": reason,
            "size": size,
            "wire_bytes": size + TAG_LEN,
            "sha256": base64.b64encode(plain_sha).decode(),
            "wire_sha256": base64.b64encode(sealer.sha256.digest()).decode(),
            "peer_received": self.peer_received,
            "seconds": round(time.monotonic() - t_start, 3),
        }
        if getattr(self, "s5b", None):
            result["s5b"] = self.s5b.get("selected")
        return result

    async def ibb_send(self, path, sealer, block):
        sem = asyncio.Semaphore(IBB_IN_FLIGHT)
        pending = set()
        seq = 0
        failed = []

        async def one(seq, data):
            try:
                await self.iq_set(
                    el(f"{{{NS_IBB}}}data", {"seq": seq, "sid": self.ibb["sid"]}, base64.b64encode(data).decode()),
                    f"IBB data {seq}",
                )
            except Failure as e:
                failed.append(e)
            finally:
                sem.release()

        buf = b""

        async def push(data, last=False):
            nonlocal buf, seq
            buf += data
            while len(buf) >= block or (last and buf):
                blk, buf = buf[:block], buf[block:]
                await self.bounded(sem.acquire(), "an IBB answer")
                if failed:
                    raise failed[0]
                pending.add(asyncio.ensure_future(one(seq, blk)))
                seq += 1  # Conversations never wraps it

        with open(path, "rb") as f:
            while chunk := f.read(16384):
                await push(sealer.update(chunk))
        await push(sealer.finish(self.args.corrupt_tag), last=True)
        if pending:
            await self.bounded(asyncio.gather(*pending), "the IBB answers")
        if failed:
            raise failed[0]

    async def receive_file(self):
        a = self.args
        _, init = await self.next_jingle("session-initiate")
        content = init.find(f"{{{NS_JINGLE}}}content")
        if content is None:
            raise Failure("failed-application", "session-initiate without a content")
        self.content = content.get("name")
        f = content.find(f"{{{NS_FT}}}description/{{{NS_FT}}}file")
        if f is None:
            await self.terminate("unsupported-applications")
            raise Failure("unsupported-applications", "no file-transfer:5 <file>")
        name = (f.findtext(f"{{{NS_FT}}}name") or "").strip()
        size_text = (f.findtext(f"{{{NS_FT}}}size") or "").strip()
        if not name or not size_text.isdigit():
            await self.terminate("failed-application", "file without name or size")
            raise Failure("failed-application", "file without name or size")
        size = int(size_text)
        sec = content.find(f"{{{NS_JET}}}security")
        # Conversations takes <security> only with name = the content's name
        # and its exact cipher URN; where it would then fall back to an
        # unencrypted transfer, this peer refuses (jet's rule, not its).
        if (
            sec is None
            or sec.get("name") != self.content
            or sec.get("cipher") != CIPHER
            or sec.get("type") != NS_STUB
        ):
            await self.terminate("security-error", "no usable <security/>")
            raise Failure("security-error", f"no usable <security/>: {ET.tostring(sec) if sec is not None else None}")
        payload = sec.findtext(f"{{{NS_STUB}}}encrypted/{{{NS_STUB}}}payload") or ""
        ts = base64.b64decode(payload.strip())
        if len(ts) not in (KEY_LEN + 12, KEY_LEN + 16):
            await self.terminate("security-error", "bad transport secret length")
            raise Failure("security-error", f"transport secret of {len(ts)} bytes")
        key, iv = ts[:KEY_LEN], ts[KEY_LEN:]
        # The answer repeats the file as Conversations parsed it: name, size,
        # mediaType (its FileTransferDescription drops everything else).
        kept = [el(f"{{{NS_FT}}}name", text=name), el(f"{{{NS_FT}}}size", text=str(size))]
        mt = f.findtext(f"{{{NS_FT}}}mediaType")
        if mt:
            kept.append(el(f"{{{NS_FT}}}mediaType", text=mt))
        desc = el(f"{{{NS_FT}}}description", children=[el(f"{{{NS_FT}}}file", children=kept)])
        s5b_t = content.find(f"{{{NS_S5B}}}transport")
        ibb_t = content.find(f"{{{NS_JIBB}}}transport")
        if a.transport == "s5b" and s5b_t is not None:
            await self.s5b_prepare(s5b_t.get("sid"))
            answer = self.s5b_transport_el()
        elif a.transport == "ibb" and ibb_t is not None:
            block = min(IBB_MAX_BLOCK, int(ibb_t.get("block-size", IBB_MAX_BLOCK)))
            self.ibb = {"sid": ibb_t.get("sid"), "block": block, "queue": asyncio.Queue(), "seq": 0}
            answer = el(f"{{{NS_JIBB}}}transport", {"block-size": block, "sid": self.ibb["sid"]})
        else:
            await self.terminate("unsupported-transports")
            raise Failure("unsupported-transports", f"the offer has no {a.transport} transport")
        await self.send_jingle("session-accept", self.content_el(desc, answer), responder=self.me)
        t_start = time.monotonic()
        os.makedirs(a.path, exist_ok=True)
        safe = os.path.basename(name.replace("\\", "/"))
        if safe in ("", ".", ".."):
            safe = str(uuid.uuid4())
        final = os.path.join(a.path, safe)
        part = os.path.join(a.path, f".{safe}.part")
        opener = Opener(key, iv, size)
        total = size + TAG_LEN
        got = 0
        try:
            with open(part, "wb") as out:
                if a.transport == "s5b":
                    r, _ = await self.s5b_establish(s5b_t, initiator=False)
                    while got < total:
                        data = await self.bounded(r.read(min(65536, total - got)), "file data")
                        if not data:
                            raise Failure("connectivity-error", f"EOF after {got} of {total} bytes")
                        got += len(data)
                        out.write(opener.update(data))
                else:
                    q = self.ibb["queue"]
                    while got < total:
                        kind, data = await self.bounded(q.get(), "IBB data")
                        if kind == "open":
                            continue
                        if kind == "error":
                            raise Failure("failed-transport", data)
                        if kind == "close":
                            raise Failure("connectivity-error", f"IBB <close/> after {got} of {total} bytes")
                        if got + len(data) > total:
                            raise Failure("failed-application", "more than size + 16 bytes")
                        got += len(data)
                        out.write(opener.update(data))
                out.write(opener.finish())
        except Failure as e:
            if os.path.exists(part):
                os.unlink(part)
            await self.terminate(e.reason if e.reason != "timeout" else "timeout", e.text)
            raise
        os.replace(part, final)
        # As Conversations: <received/>, close the transport, terminate.
        await self.send_jingle("session-info", el(f"{{{NS_FT}}}received", {"name": self.content}))
        if getattr(self, "conn", None):
            self.conn[1].close()
        await self.send_jingle("session-terminate", reason_el("success"))
        result = {
            "event": "done",
            "role": "receive",
            "transport": a.transport,
            "outcome": "success",
            "path": final,
            "size": size,
            "wire_bytes": got,
            "sha256": base64.b64encode(opener.plain_sha256.digest()).decode(),
            "wire_sha256": base64.b64encode(opener.wire_sha256.digest()).decode(),
            "peer_checksums": self.peer_checksums,
            "seconds": round(time.monotonic() - t_start, 3),
        }
        if getattr(self, "s5b", None):
            result["s5b"] = self.s5b.get("selected")
        return result


async def amain(args):
    peer = Peer(args)
    try:
        result = await peer.run()
        return result
    finally:
        try:
            fut = peer.x.disconnect(wait=1.0)
            if fut is not None:
                await asyncio.wait_for(fut, 3)
        except Exception:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="role", required=True)
    for role, what in (("send", "the file to send"), ("receive", "the directory for the file")):
        s = sub.add_parser(role)
        s.add_argument("path", help=what)
        s.add_argument("--peer", required=True, help="the other side (full JID to send to; bare or full to accept from)")
        s.add_argument("--transport", choices=["s5b", "ibb"], required=True)
        s.add_argument("--server", required=True, help="HOST:PORT of the XMPP server")
        s.add_argument("--ca", required=True, help="CA certificate file (PEM)")
        s.add_argument("--jid", required=True, help="our bare JID")
        s.add_argument("--password-env", default="JET_PASSWORD", help="environment variable holding the password")
        s.add_argument("--timeout", type=float, default=30.0, help="bound on the whole run (seconds)")
        s.add_argument("-v", "--verbose", action="store_true", help="log stanzas to stderr")
        if role == "send":
            s.add_argument(
                "--corrupt-tag",
                action="store_true",
                help="flip one bit of the GCM tag on the wire (the receiver must refuse the file)",
            )
    sub.add_parser("selftest")
    seal = sub.add_parser("seal")
    seal.add_argument("input")
    seal.add_argument("output")
    args = p.parse_args()
    if args.role == "seal":
        # What send puts on the wire for INPUT, into OUTPUT, with a fresh key
        # and IV (printed, hex) and the checksum it would send: for checking
        # the peer's wire format with another implementation (jet decrypt).
        key, iv = os.urandom(KEY_LEN), os.urandom(IV_LEN)
        s = Sealer(key, iv)
        with open(args.input, "rb") as i, open(args.output, "wb") as o:
            while chunk := i.read(16384):
                o.write(s.update(chunk))
            o.write(s.finish())
        b64 = lambda h: base64.b64encode(h.digest()).decode()  # noqa: E731
        print(json.dumps({"event": "sealed", "key": key.hex(), "iv": iv.hex(), "sha-1": b64(s.sha1), "sha-256": b64(s.sha256)}))
        sys.exit(0)
    if args.role == "selftest":
        failures = selftest()
        print(json.dumps({"event": "selftest", "failures": failures}), flush=True)
        sys.exit(1 if failures else 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(asyncio.wait_for(amain(args), args.timeout + 5))
    except Failure as e:
        result = {"event": "error", "role": args.role, "transport": args.transport, "outcome": e.reason, "error": e.text}
    except asyncio.TimeoutError:
        result = {"event": "error", "role": args.role, "transport": args.transport, "outcome": "timeout", "error": "the whole run timed out"}
    except Exception as e:  # a bug of ours: say so, fail
        result = {"event": "error", "role": args.role, "transport": args.transport, "outcome": "exception", "error": repr(e)}
    print(json.dumps(result), flush=True)
    sys.exit(0 if result.get("event") == "done" else 1)


if __name__ == "__main__":
    main()
