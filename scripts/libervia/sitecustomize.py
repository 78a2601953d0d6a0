# jet's loopback guard for a test Libervia (loaded through PYTHONPATH by
# scripts/libervia-peer). Libervia's SOCKS5 server listens on every
# interface and it advertises every interface address as a candidate; in
# jet's tests it must only ever use 127.0.0.1.
import ipaddress
import sys

# Without netifaces Libervia only knows the address of its server
# connection (127.0.0.1 here) as its own.
sys.modules["netifaces"] = None

try:
    from twisted.internet import posixbase

    _listen_tcp = posixbase.PosixReactorBase.listenTCP

    def _all_interfaces(interface):
        # No address, or the unspecified address of either family.
        if not interface:
            return True
        try:
            return ipaddress.ip_address(interface).is_unspecified
        except ValueError:
            return False

    def _loopback_listen_tcp(self, port, factory, backlog=50, interface=""):
        if _all_interfaces(interface):
            interface = "127.0.0.1"
        return _listen_tcp(self, port, factory, backlog, interface)

    posixbase.PosixReactorBase.listenTCP = _loopback_listen_tcp
except Exception as exc:  # pragma: no cover - reported, the script checks
    sys.stderr.write("jet loopback guard: cannot patch twisted: %r\n" % (exc,))
