#!/usr/bin/python3
"""A Prosody user (slixmpp, password login over STARTTLS) that answers a
'ping' from a Snow user across the s2s link.

usage: interop-prosody-peer.py JID PASSWORD HOST PORT CA_PEM
Exits 0 once it has answered one ping.
"""
import asyncio
import sys

import slixmpp


class Peer(slixmpp.ClientXMPP):
    def __init__(self, jid, password, ca):
        super().__init__(jid, password)
        self.ca_certs = ca
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)

    async def start(self, _event):
        self.send_presence()
        print(f"prosody-peer: logged in as {self.boundjid.full}", flush=True)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"].startswith("ping"):
            print(f"prosody-peer: got {msg['body']!r} from {msg['from']}", flush=True)
            self.send_message(mto=msg["from"].bare, mbody="pong: " + msg["body"], mtype="chat")
            if not self.done.done():
                self.done.set_result(True)


async def main():
    jid, password, host, port, ca = sys.argv[1:6]
    xmpp = Peer(jid, password, ca)
    xmpp.connect(address=(host, int(port)), force_starttls=True)
    try:
        await asyncio.wait_for(xmpp.done, timeout=60)
    finally:
        await asyncio.sleep(1.0)
        xmpp.disconnect()
        await asyncio.sleep(0.5)


if __name__ == "__main__":
    asyncio.run(main())
