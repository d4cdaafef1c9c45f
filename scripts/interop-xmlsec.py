#!/usr/bin/env python3
"""libxmlsec1 1.3 (PyPI `xmlsec`, pinned with `lxml`) as the reference for
XML Encryption 1.1 with `xmlenc11#rsa-oaep` (SHA-256, MGF1-SHA-256), which
the xmlsec1 1.2 command line of Debian 12 does not know.

  interop-xmlsec.py decrypt DOC.xml KEY.pem
      prints the document with the EncryptedData replaced by its content
      (or the raw plaintext for opaque data)
  interop-xmlsec.py encrypt PLAIN CERT.pem OUT.xml sha256|sha1 keyname|x509 [NAME]
      aes256-gcm content (Type Content), one EncryptedKey for CERT
"""
import sys

import xmlsec
from lxml import etree

XENC = "http://www.w3.org/2001/04/xmlenc#"


def decrypt(path, key_pem):
    doc = etree.parse(path)
    root = doc.getroot()
    node = root if root.tag == f"{{{XENC}}}EncryptedData" else root.find(f".//{{{XENC}}}EncryptedData")
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(key_pem, xmlsec.constants.KeyDataFormatPem))
    result = xmlsec.EncryptionContext(manager).decrypt(node)
    if isinstance(result, bytes):
        sys.stdout.buffer.write(result)
    else:
        sys.stdout.write(etree.tostring(doc.getroot(), encoding="unicode"))


def encrypt(plain, cert_pem, out, oaep, naming, name=""):
    method = {
        "sha256": '<EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#rsa-oaep">'
        '<DigestMethod xmlns="http://www.w3.org/2000/09/xmldsig#" Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        '<MGF xmlns="http://www.w3.org/2009/xmlenc11#" Algorithm="http://www.w3.org/2009/xmlenc11#mgf1sha256"/>'
        "</EncryptionMethod>",
        "sha1": '<EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>',
    }[oaep]
    key_ref = {"keyname": f"<KeyName>{name}</KeyName>", "x509": "<X509Data/>"}[naming]
    template = f"""<EncryptedData xmlns="{XENC}" Type="http://www.w3.org/2001/04/xmlenc#Content">
  <EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>
  <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
    <EncryptedKey xmlns="{XENC}">{method}
      <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">{key_ref}</KeyInfo>
      <CipherData><CipherValue/></CipherData>
    </EncryptedKey>
  </KeyInfo>
  <CipherData><CipherValue/></CipherData>
</EncryptedData>"""
    root = etree.fromstring(template)
    manager = xmlsec.KeysManager()
    key = xmlsec.Key.from_file(cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    if name:
        key.name = name
    manager.add_key(key)
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession)
    with open(plain, "rb") as f:
        enc = ctx.encrypt_binary(root, f.read())
    with open(out, "wb") as f:
        f.write(etree.tostring(enc, xml_declaration=True, encoding="UTF-8"))


if __name__ == "__main__":
    if sys.argv[1] == "decrypt":
        decrypt(*sys.argv[2:4])
    else:
        encrypt(*sys.argv[2:])
