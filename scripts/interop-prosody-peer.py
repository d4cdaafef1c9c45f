#!/usr/bin/python3
"""A Prosody user (slixmpp, password login over STARTTLS) that answers a
'ping' from a Snow user across the s2s link.

usage: interop-prosody-peer.py JID PASSWORD HOST PORT CA_PEM [ECHO_JID]
Exits 0 once it has answered one ping. With ECHO_JID it instead sends one
message there and exits 0 once the same text comes back from it.
"""
import asyncio
import sys

import slixmpp


class Peer(slixmpp.ClientXMPP):
    def __init__(self, jid, password, ca, echo=None):
        super().__init__(jid, password)
        self.ca_certs = ca
        self.echo = echo
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)

    async def start(self, _event):
        self.send_presence()
        print(f"prosody-peer: logged in as {self.boundjid.full}", flush=True)
        if self.echo:
            self.send_message(mto=self.echo, mbody="echo me, component", mtype="chat")

    def on_message(self, msg):
        if self.echo:
            if msg["from"].bare == self.echo and msg["body"] == "echo me, component":
                print(f"prosody-peer: echoed {msg['body']!r} by {msg['from']}", flush=True)
                if not self.done.done():
                    self.done.set_result(True)
            return
        if msg["type"] in ("chat", "normal") and msg["body"].startswith("ping"):
            print(f"prosody-peer: got {msg['body']!r} from {msg['from']}", flush=True)
            self.send_message(mto=msg["from"].bare, mbody="pong: " + msg["body"], mtype="chat")
            if not self.done.done():
                self.done.set_result(True)


async def main():
    jid, password, host, port, ca = sys.argv[1:6]
    xmpp = Peer(jid, password, ca, sys.argv[6] if len(sys.argv) > 6 else None)
    xmpp.connect(address=(host, int(port)), force_starttls=True)
    try:
        await asyncio.wait_for(xmpp.done, timeout=60)
    finally:
        await asyncio.sleep(1.0)
        xmpp.disconnect()
        await asyncio.sleep(0.5)


if __name__ == "__main__":
    asyncio.run(main())
