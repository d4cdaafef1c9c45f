#!/usr/bin/python3
"""XEP-0198 stream management between slixmpp's plugin (Debian's
python3-slixmpp) and `snow serve`: enabled with resumption, acks both ways,
then the connection dropped without a goodbye; while it is gone a second
connection of the same account sends messages to the first one's full JID,
which the server keeps for the session; the first then reconnects and
resumes, gets each of those messages exactly once, and acks settle again.

(It drops the connection only once every stanza it sent is acknowledged:
slixmpp 1.8 empties its own queue of unacknowledged stanzas when it sends
<resume/>, so what it had in flight itself would be lost on its side.)

usage: interop-slixmpp-sm.py JID HOST PORT CA_PEM CERT_PEM KEY_PEM
Prints what happened; exits 0 when every check held.
"""
import asyncio
import logging
import os
import sys

import slixmpp

BEFORE = 10  # messages to ourselves, acknowledged before the drop
AWAY = 3  # sent to us by another connection while we are gone
AFTER = 2  # to ourselves after the resumption


class Peer(slixmpp.ClientXMPP):
    def __init__(self, jid, ca, cert, key, address):
        super().__init__(jid, "", sasl_mech="EXTERNAL")
        self.ca_certs = ca
        self.certfile = cert
        self.keyfile = key
        self.address = address
        self.register_plugin("xep_0198")
        self.sm = self.plugin["xep_0198"]
        self.received = {}
        self.enabled = None
        self.phase = "first"
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("sm_enabled", self.on_enabled)
        self.add_event_handler("session_resumed", self.on_resumed)
        self.add_event_handler("sm_failed", lambda _: self.fail("the server refused stream management"))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("failed_auth", lambda _: self.fail("SASL EXTERNAL refused"))

    def fail(self, why):
        if not self.done.done():
            self.done.set_exception(RuntimeError(why))

    def on_enabled(self, stanza):
        self.enabled = stanza
        print(f"slixmpp: stream management enabled (resume={stanza['resume']}, id set: {bool(stanza['id'])})",
              flush=True)

    def on_message(self, msg):
        if msg["type"] == "chat" and msg["id"].startswith("sm-"):
            self.received[msg["id"]] = self.received.get(msg["id"], 0) + 1

    async def wait_for(self, what, check, timeout=15):
        for _ in range(int(timeout * 20)):
            if check():
                return True
            await asyncio.sleep(0.05)
        self.fail(f"timed out waiting for {what}")
        return False

    def send_own(self, ident):
        # To our own bare JID: the server routes it back to this session.
        msg = self.make_message(mto=self.boundjid.bare, mbody=ident, mtype="chat")
        msg["id"] = ident
        msg.send()

    async def settled(self, what):
        """Asks for an ack until the server has acknowledged all we sent."""
        for _ in range(30):
            self.sm.request_ack()
            await asyncio.sleep(0.2)
            if self.sm.last_ack == self.sm.seq:
                return True
        self.fail(f"the server did not acknowledge everything {what} (h={self.sm.last_ack}, sent {self.sm.seq})")
        return False

    async def start(self, _event):
        self.send_presence()
        if not await self.wait_for("<enabled/>", lambda: self.enabled is not None):
            return
        if not self.enabled["resume"] or not self.enabled["id"]:
            return self.fail("no resumption offered")
        for i in range(BEFORE):
            self.send_own(f"sm-{i}")
        if not await self.wait_for("our messages", lambda: len(self.received) >= BEFORE):
            return
        if not await self.settled("before the drop"):
            return
        print(f"slixmpp: the server acknowledged all {self.sm.last_ack} stanzas we sent", flush=True)
        # Gone without a goodbye, as a dropped network would be.
        self.phase = "dropped"
        full = self.boundjid.full
        self.abort()
        await Helper.send_to(self, full)

    def on_disconnected(self, _event):
        if self.phase == "away-sent":
            self.phase = "resuming"
            print("slixmpp: reconnecting to resume", flush=True)
            self.connect(address=self.address, force_starttls=True)

    async def on_resumed(self, _event):
        print("slixmpp: stream resumed", flush=True)
        self.phase = "resumed"
        for i in range(AFTER):
            self.send_own(f"sm-after-{i}")
        want = BEFORE + AWAY + AFTER
        if not await self.wait_for("every message after resumption", lambda: len(self.received) >= want):
            return
        await asyncio.sleep(1)  # anything twice would have come by now
        twice = sorted(k for k, n in self.received.items() if n > 1)
        expected = [f"sm-{i}" for i in range(BEFORE)] + [f"sm-away-{i}" for i in range(AWAY)]
        expected += [f"sm-after-{i}" for i in range(AFTER)]
        missing = [m for m in expected if m not in self.received]
        if twice or missing:
            return self.fail(f"twice: {twice}, missing: {missing}")
        print(f"slixmpp: the {AWAY} messages sent while we were away arrived after resumption", flush=True)
        if not await self.settled("after the resumption"):
            return
        print(f"slixmpp: each of {want} messages exactly once; every stanza acknowledged (h={self.sm.last_ack})",
              flush=True)
        if not self.done.done():
            self.done.set_result(True)


class Helper(slixmpp.ClientXMPP):
    """A second connection of the same account, without presence (so it
    gets nothing for the bare JID): sends AWAY messages to `to`."""

    def __init__(self, peer, to):
        super().__init__(peer.boundjid.bare, "", sasl_mech="EXTERNAL")
        self.ca_certs, self.certfile, self.keyfile = peer.ca_certs, peer.certfile, peer.keyfile
        self.to = to
        self.sent = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)

    async def start(self, _event):
        for i in range(AWAY):
            msg = self.make_message(mto=self.to, mbody=f"sm-away-{i}", mtype="chat")
            msg["id"] = f"sm-away-{i}"
            msg.send()
        # A round trip: the server has routed them.
        await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)
        self.sent.set_result(True)

    @staticmethod
    async def send_to(peer, to):
        helper = Helper(peer, to)
        helper.register_plugin("xep_0199")
        helper.connect(address=peer.address, force_starttls=True)
        try:
            await asyncio.wait_for(helper.sent, timeout=20)
        except Exception as e:  # noqa: BLE001
            return peer.fail(f"the second connection could not send: {e}")
        helper.disconnect()
        print(f"slixmpp: {AWAY} messages sent to {to} while it was away", flush=True)
        peer.phase = "away-sent"
        peer.on_disconnected(None)


async def main():
    jid, host, port, ca, cert, key = sys.argv[1:7]
    address = (host, int(port))
    xmpp = Peer(jid, ca, cert, key, address)
    xmpp.connect(address=address, force_starttls=True)
    try:
        await asyncio.wait_for(xmpp.done, timeout=60)
    finally:
        xmpp.disconnect()
        await asyncio.sleep(0.5)


if __name__ == "__main__":
    if os.environ.get("SLIX_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(message)s")
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 (one line for the interop log)
        print(f"slixmpp: FAILED: {e}", flush=True)
        sys.exit(1)
