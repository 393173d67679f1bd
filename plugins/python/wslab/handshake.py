"""go-plugin's handshake from the plugin's side, as go-plugin's server.go
does it: the magic cookie, the app protocol version, a Unix socket in a
fresh directory, AutoMTLS, and the one line on stdout that tells the host
where to connect:

    CORE|APP|unix|PATH|grpc|CERT

CERT is the plugin's one-time certificate, base64 (standard alphabet, no
padding) of its DER, which the host trusts as the only root for the
connection, as it trusts no client but the one whose certificate it passed
in PLUGIN_CLIENT_CERT (client.go: loadServerCert; server.go: Serve)."""

import base64
import datetime
import os
import secrets
import shutil
import sys
import tempfile

MAGIC_COOKIE_KEY = "WSLAB_PLUGIN"
MAGIC_COOKIE_VALUE = "executor-v1-7f3c2a"
CORE_PROTOCOL_VERSION = 1  # go-plugin's own
PROTOCOL_VERSION = 3  # the wslab contract's (taskproto/plugin: ProtocolVersion)
# A Unix socket path is at most 107 bytes and a NUL.
_MAX_SOCKET_PATH = 107


def fail(message):
    """Stops the plugin before the handshake: stdout must stay empty, so the
    host reads the reason from stderr."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
    sys.exit(1)


def check_cookie():
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        fail("This binary is a wslab strategy plugin. It is not meant to be executed directly:\n"
             "the wslab host starts it (bin/host --plugin=NAME).")


def negotiate_version():
    """The app protocol version both sides speak. A host that names none is
    an old go-plugin client, which takes the plugin's (server.go)."""
    offered = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "")
    if not offered:
        return PROTOCOL_VERSION
    versions = []
    for s in offered.split(","):
        try:
            versions.append(int(s))
        except ValueError:
            sys.stderr.write(f"host sent invalid plugin version {s!r}\n")
    if PROTOCOL_VERSION not in versions:
        fail(f"this plugin speaks version {PROTOCOL_VERSION} of the wslab plugin contract; the host offers "
             f"version(s) {offered}: rebuild the plugin or the host so that they match")
    return PROTOCOL_VERSION


class Listener:
    """Where the control service listens: a Unix socket in a directory of
    our own (removed by close), or in PLUGIN_UNIX_SOCKET_DIR (go-plugin's
    env, left in place)."""

    def __init__(self):
        given = os.environ.get("PLUGIN_UNIX_SOCKET_DIR")
        self._own_dir = None if given else tempfile.mkdtemp(prefix="plugin")
        directory = given or self._own_dir
        self.path = os.path.join(directory, "plugin" + secrets.token_hex(8))
        if len(self.path.encode()) > _MAX_SOCKET_PATH:
            self.close()
            fail(f"socket path {self.path} is longer than a Unix socket allows ({_MAX_SOCKET_PATH} bytes): "
                 "set TMPDIR or PLUGIN_UNIX_SOCKET_DIR to a shorter directory")

    def close(self):
        if self._own_dir:
            shutil.rmtree(self._own_dir, ignore_errors=True)
        else:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass


class AutoMTLS:
    """A one-time certificate and key like go-plugin's generateCert
    (mtls.go): ECDSA P-521, self-signed, a CA, for "localhost", valid from
    30 s ago for 262980 hours, usable for client and server auth."""

    def __init__(self, client_cert_pem):
        # Imported here: a host without AutoMTLS needs no cryptography.
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        try:
            x509.load_pem_x509_certificate(client_cert_pem)
        except ValueError as e:
            fail(f"PLUGIN_CLIENT_CERT is not a PEM certificate: {e}")
        self.client_cert_pem = client_cert_pem
        key = ec.generate_private_key(ec.SECP521R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(key.public_key())
                .serial_number(secrets.randbits(128))
                .not_valid_before(now - datetime.timedelta(seconds=30))
                .not_valid_after(now + datetime.timedelta(hours=262980))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                             data_encipherment=False, key_agreement=True, key_cert_sign=True,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                      ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                # Go's x509.CreateCertificate signs with a P-521 key this way.
                .sign(key, hashes.SHA512()))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                         serialization.NoEncryption())
        self.line_field = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).rstrip(b"=").decode()

    def credentials(self):
        """Server credentials that require the host's certificate."""
        import grpc

        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)], root_certificates=self.client_cert_pem,
                                           require_client_auth=True)


def auto_mtls():
    """The AutoMTLS material when the host asks for it, else None."""
    pem = os.environ.get("PLUGIN_CLIENT_CERT", "")
    return AutoMTLS(pem.encode()) if pem else None


def line(version, socket_path, tls):
    """The handshake line. A host that asks for gRPC broker multiplexing
    (PLUGIN_MULTIPLEX_GRPC) is told this plugin has none, which go-plugin
    reports as such instead of failing later."""
    out = f"{CORE_PROTOCOL_VERSION}|{version}|unix|{socket_path}|grpc|{tls.line_field if tls else ''}"
    if os.environ.get("PLUGIN_MULTIPLEX_GRPC"):
        out += "|false"
    return out + "\n"
