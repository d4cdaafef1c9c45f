#!/usr/bin/python3
"""A standard XMPP client (slixmpp, Debian's python3-slixmpp) against
`snow serve`: STARTTLS, SASL EXTERNAL with a certificate and key exported as
PEM, roster, presence, and a message exchange with `snow chat`.

usage: interop-slixmpp.py JID HOST PORT CA_PEM CERT_PEM KEY_PEM PEER_JID
Exits 0 once it has answered a 'ping' from PEER_JID and greeted it.
"""
import asyncio
import sys

import slixmpp


class Peer(slixmpp.ClientXMPP):
    def __init__(self, jid, ca, cert, key, peer):
        super().__init__(jid, "", sasl_mech="EXTERNAL")
        self.ca_certs = ca
        self.certfile = cert
        self.keyfile = key
        self.peer = peer
        self.answered = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", lambda _: self.fail("SASL EXTERNAL refused"))

    def fail(self, why):
        if not self.answered.done():
            self.answered.set_exception(RuntimeError(why))

    async def start(self, _event):
        await self.get_roster()
        self.send_presence()
        self.send_message(mto=self.peer, mbody="hello from slixmpp", mtype="chat")
        print(f"slixmpp: logged in as {self.boundjid.full}", flush=True)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"].startswith("ping"):
            print(f"slixmpp: got {msg['body']!r} from {msg['from']}", flush=True)
            # To the bare JID: the sender may have been a one-shot `snow chat
            # send` whose session is gone; the bare JID reaches its listener
            # or offline storage.
            self.send_message(mto=msg["from"].bare, mbody="pong: " + msg["body"], mtype="chat")
            if not self.answered.done():
                self.answered.set_result(True)


async def main():
    jid, host, port, ca, cert, key, peer = sys.argv[1:8]
    xmpp = Peer(jid, ca, cert, key, peer)
    xmpp.connect(address=(host, int(port)), force_starttls=True)
    try:
        await asyncio.wait_for(xmpp.answered, timeout=60)
    finally:
        await asyncio.sleep(0.5)
        xmpp.disconnect()
        await asyncio.sleep(0.5)


if __name__ == "__main__":
    asyncio.run(main())
