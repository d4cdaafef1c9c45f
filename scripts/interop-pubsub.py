#!/usr/bin/python3
"""A standard XMPP client (slixmpp with its XEP-0060 plugin) as a GP of
`snow serve`'s alert pubsub service: it subscribes to an alert node, waits
for the notification of an alert `snow alert send` publishes, writes the
(encrypted) alert payload to a file for xmlsec1, and fetches the node's
items the standard way.

usage: interop-pubsub.py JID HOST PORT CA_PEM CERT_PEM KEY_PEM SERVICE NODE OUT
Prints 'subscribed' once subscribed; exits 0 after the notification and
the items request.
"""
import asyncio
import sys
import xml.etree.ElementTree as ET

import slixmpp


class Subscriber(slixmpp.ClientXMPP):
    def __init__(self, jid, ca, cert, key, service, node, out):
        super().__init__(jid, "", sasl_mech="EXTERNAL")
        self.ca_certs = ca
        self.certfile = cert
        self.keyfile = key
        self.service, self.node, self.out = service, node, out
        self.register_plugin("xep_0060")
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("pubsub_publish", self.on_publish)
        self.add_event_handler("failed_auth", lambda _: self.fail("SASL EXTERNAL refused"))

    def fail(self, why):
        if not self.done.done():
            self.done.set_exception(RuntimeError(why))

    async def start(self, _event):
        self.send_presence()
        try:
            await self["xep_0060"].subscribe(self.service, self.node)
        except Exception as e:  # noqa: BLE001 - reported and fatal
            self.fail(f"subscribe failed: {e}")
            return
        print("slixmpp: subscribed", flush=True)

    def on_publish(self, msg):
        item = msg["pubsub_event"]["items"]["item"]
        payload = item["payload"]
        with open(self.out, "w") as f:
            f.write(ET.tostring(payload, encoding="unicode"))
        print(f"slixmpp: notified of item {item['id']} on {msg['pubsub_event']['items']['node']} "
              f"from {msg['from']}", flush=True)
        asyncio.ensure_future(self.fetch(item["id"]))

    async def fetch(self, item_id):
        try:
            r = await self["xep_0060"].get_items(self.service, self.node, max_items=10)
            ids = [i["id"] for i in r["pubsub"]["items"]]
            print(f"slixmpp: items on the node: {ids}", flush=True)
            if item_id not in ids:
                raise RuntimeError("the published item is not among the node's items")
            if not self.done.done():
                self.done.set_result(True)
        except Exception as e:  # noqa: BLE001 - reported and fatal
            self.fail(f"items failed: {e}")


async def main():
    jid, host, port, ca, cert, key, service, node, out = sys.argv[1:10]
    xmpp = Subscriber(jid, ca, cert, key, service, node, out)
    xmpp.connect(address=(host, int(port)), force_starttls=True)
    try:
        await asyncio.wait_for(xmpp.done, timeout=60)
    finally:
        await asyncio.sleep(0.5)
        xmpp.disconnect()
        await asyncio.sleep(0.5)


if __name__ == "__main__":
    asyncio.run(main())
