"""Certificates the TLS tests need, made fresh for each run (python3-cryptography).

  root  ─► intermediate ─► api.partner.example, *.wild.example, IP 203.0.113.7,
                           expired, not yet valid, wrong name
  other root ─► leaf for api.partner.example    (untrusted root)
  self-signed api.partner.example
  client CA ─► client certificate               (mTLS)
"""
import base64
import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_key, cn, issuer_key=None, issuer_cert=None, ca=False, sans=(),
          not_before=None, not_after=None, client=False):
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn))
         .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
         .public_key(subject_key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before or NOW - DAY)
         .not_valid_after(not_after or NOW + 30 * DAY)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                          crl_sign=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False,
                                          decipher_only=False), critical=True)
    else:
        eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if sans:
        alt = [x509.IPAddress(ipaddress.ip_address(s[3:])) if s.startswith("ip:")
               else x509.DNSName(s) for s in sans]
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return b.sign(issuer_key or subject_key, hashes.SHA256())


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def spki_pin(cert):
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def make(d):
    """Writes every file into d; returns {name: path} and the pins."""
    files = {}

    def write(name, *objs):
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            for o in objs:
                f.write(_pem(o))
        os.chmod(path, 0o644)
        files[name] = path

    root_k = _key()
    root = _cert(root_k, "attache test root", ca=True)
    inter_k = _key()
    inter = _cert(inter_k, "attache test intermediate", root_k, root, ca=True)
    write("root.pem", root)

    def leaf(name, cn, sans, **kw):
        k = _key()
        c = _cert(k, cn, inter_k, inter, sans=sans, **kw)
        write(f"{name}.pem", c, inter)          # leaf + intermediate
        write(f"{name}-leaf-only.pem", c)
        write(f"{name}.key", k)
        return c

    good = leaf("good", "api.partner.example", ["api.partner.example"])
    leaf("wild", "*.wild.example", ["*.wild.example"])
    leaf("ip", "203.0.113.7", ["ip:203.0.113.7"])
    leaf("expired", "api.partner.example", ["api.partner.example"],
         not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    leaf("notyet", "api.partner.example", ["api.partner.example"],
         not_before=NOW + DAY, not_after=NOW + 30 * DAY)
    leaf("wrongname", "other.example", ["other.example"])
    leaf("http", "api.partner.example", ["api.partner.example", "other.partner.example",
                                         "idle.partner.example", "ws.partner.example",
                                         "bulk.partner.example", "slow.partner.example",
                                         "via.partner.example"])

    k = _key()
    write("selfsigned.pem", _cert(k, "api.partner.example", sans=["api.partner.example"]))
    write("selfsigned.key", k)

    other_k = _key()
    other = _cert(other_k, "some other root", ca=True)
    k = _key()
    write("untrusted.pem", _cert(k, "api.partner.example", other_k, other,
                                 sans=["api.partner.example"]), other)
    write("untrusted.key", k)

    cca_k = _key()
    cca = _cert(cca_k, "attache test client CA", ca=True)
    write("client-ca.pem", cca)
    k = _key()
    write("client.pem", _cert(k, "attache client", cca_k, cca, client=True))
    write("client.key", k)

    return files, {"good": spki_pin(good), "other": spki_pin(other)}
