#!/usr/bin/env python3
"""An OMEMO 0.3 peer on python-omemo + oldmemo, driven over stdin/stdout.

Used by jet-envelopes/tests/omemo_interop.rs to check that our Rust OMEMO
implementation and python-omemo's independent `oldmemo` backend understand
each other in both directions. One JSON request per input line, one JSON
answer per output line; bytes travel as base64, XML as strings. The "XMPP
server" is simulated: bundles and device lists of the Rust peer are handed
in with `add_peer`, and messages python-omemo wants to send on its own
(session-completing empty messages) are returned in `outbox`.

Requests:
  {"cmd": "init", "jid": J}                  -> {"device_id", "bundle"}
  {"cmd": "add_peer", "jid", "device_id", "bundle"}   -> {}
  {"cmd": "encrypt", "to": J, "plaintext"}   -> {"xml", "key_material"}
  {"cmd": "key_transport", "to", "device_id", "key", "iv"} -> {"xml", "prekey"}
  {"cmd": "decrypt", "from": J, "xml"}       -> {"plaintext"|null, "key", "auth_tag",
                                                 "sender_device", "outbox": [{"xml", "key"}]}
  {"cmd": "quit"}
Errors: {"error": "..."}.
"""

import asyncio
import base64
import json
import sys
import traceback
import xml.etree.ElementTree as ET

import omemo
import oldmemo
import oldmemo.etree
from oldmemo.oldmemo import NAMESPACE, ContentImpl, PlainKeyMaterialImpl
from omemo.storage import Just, Nothing
from omemo.types import TrustLevel

ET.register_namespace("", NAMESPACE)

# The simulated world: what the Rust side published, what python published.
PEER_BUNDLES = {}  # (jid, device_id) -> bundle XML string
PEER_DEVICE_LISTS = {}  # jid -> {device_id: None}
OWN = {"bundle": None}
OUTBOX = []  # messages python-omemo sent by itself
EMPTY_KEYS = []  # key material of the empty messages it made


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def to_xml(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")


class MemoryStorage(omemo.Storage):
    def __init__(self) -> None:
        super().__init__()
        self.data = {}

    async def _load(self, key):
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


class RecordingOldmemo(oldmemo.Oldmemo):
    """Oldmemo that remembers the keys of the empty messages it makes, so the
    test can compare them with what the Rust side decrypts."""

    async def encrypt_empty(self):
        content, key_material = await super().encrypt_empty()
        EMPTY_KEYS.append(key_material.key + key_material.auth_tag)
        return content, key_material


class Peer(omemo.SessionManager):
    @staticmethod
    async def _upload_bundle(bundle):
        OWN["bundle"] = to_xml(oldmemo.etree.serialize_bundle(bundle))

    @staticmethod
    async def _download_bundle(namespace, bare_jid, device_id):
        xml = PEER_BUNDLES.get((bare_jid, device_id))
        if xml is None:
            raise omemo.BundleNotFound(f"no bundle for {bare_jid}/{device_id}")
        return oldmemo.etree.parse_bundle(ET.fromstring(xml), bare_jid, device_id)

    @staticmethod
    async def _delete_bundle(namespace, device_id):
        pass

    @staticmethod
    async def _upload_device_list(namespace, device_list):
        pass

    @staticmethod
    async def _download_device_list(namespace, bare_jid):
        return dict(PEER_DEVICE_LISTS.get(bare_jid, {}))

    async def _evaluate_custom_trust_level(self, device):
        # Blind trust: this is a protocol test, not a trust test.
        return TrustLevel.TRUSTED

    async def _make_trust_decision(self, undecided, identifier):
        pass

    @staticmethod
    async def _send_message(message, bare_jid):
        OUTBOX.append({
            "to": bare_jid,
            "xml": to_xml(oldmemo.etree.serialize_message(message)),
            "key": b64(EMPTY_KEYS[-1]) if EMPTY_KEYS else None,
        })


class State:
    manager = None
    backend = None
    jid = None


async def handle(req):
    cmd = req["cmd"]
    if cmd == "init":
        State.jid = req["jid"]
        storage = MemoryStorage()
        State.backend = RecordingOldmemo(storage)
        State.manager = await Peer.create([State.backend], storage, State.jid, None, "blind")
        # A new SessionManager starts in history-synchronization mode, which
        # defers its automatic messages; we are "online" from the start.
        await State.manager.after_history_sync()
        own, _ = await State.manager.get_own_device_information()
        return {"device_id": own.device_id, "bundle": OWN["bundle"]}
    if cmd == "add_peer":
        PEER_BUNDLES[(req["jid"], req["device_id"])] = req["bundle"]
        PEER_DEVICE_LISTS.setdefault(req["jid"], {})[req["device_id"]] = None
        await State.manager.update_device_list(NAMESPACE, req["jid"], PEER_DEVICE_LISTS[req["jid"]])
        return {}
    if cmd == "encrypt":
        messages, errors = await State.manager.encrypt(
            frozenset({req["to"]}), {NAMESPACE: unb64(req["plaintext"])}
        )
        if errors:
            return {"error": f"encryption errors: {errors!r}"}
        (message, key_material), = messages.items()
        return {
            "xml": to_xml(oldmemo.etree.serialize_message(message)),
            "key_material": b64(key_material.key + key_material.auth_tag),
        }
    if cmd == "key_transport":
        # A JET-OMEMO KeyTransportElement with a chosen key and IV, built from
        # the backend's public methods the way python-omemo builds its own
        # empty messages.
        session = await State.backend.load_session(req["to"], req["device_id"])
        if session is None:
            return {"error": "no session; encrypt a message first"}
        encrypted = await State.backend.encrypt_key_material(
            session, PlainKeyMaterialImpl(unb64(req["key"]), b"")
        )
        await State.backend.store_session(session)
        pending = session.initiation is omemo.session.Initiation.ACTIVE and not session.confirmed
        own, _ = await State.manager.get_own_device_information()
        message = omemo.Message(
            NAMESPACE,
            State.jid,
            own.device_id,
            ContentImpl(b"", unb64(req["iv"])),
            frozenset({(encrypted, session.key_exchange if pending else None)}),
        )
        return {"xml": to_xml(oldmemo.etree.serialize_message(message)), "prekey": pending}
    if cmd == "decrypt":
        OUTBOX.clear()
        element = ET.fromstring(req["xml"])
        message = await oldmemo.etree.parse_message(element, req["from"], State.jid, State.manager)
        plaintext, device, key_material = await State.manager.decrypt(message)
        iv = element.find(f"{{{NAMESPACE}}}header/{{{NAMESPACE}}}iv")
        return {
            "plaintext": None if plaintext is None else b64(plaintext),
            "key": b64(key_material.key),
            "auth_tag": b64(key_material.auth_tag),
            "iv": iv.text if iv is not None else None,
            "sender_device": device.device_id,
            "outbox": list(OUTBOX),
        }
    return {"error": f"unknown command {cmd!r}"}


async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        req = json.loads(line)
        if req.get("cmd") == "quit":
            return
        try:
            answer = await handle(req)
        except Exception as e:  # report every failure to the Rust side
            answer = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
