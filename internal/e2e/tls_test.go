//go:build linux

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/hostproc"
)

// testCA writes a CA and a certificate it signed for 127.0.0.1 and
// localhost; it returns the paths of the CA, the certificate and its key.
func testCA(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wslab test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "wslab test host"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return write("ca.pem", "CERTIFICATE", caDER), write("host.pem", "CERTIFICATE", leafDER), write("host.key", "EC PRIVATE KEY", keyDER)
}

// TestTLS: with tls_cert and tls_key the host serves wss:// (and its
// health over https); the client trusts the host's CA with --tls-ca, and a
// client that does not trust it, or speaks plain ws://, is refused. The
// bearer token travels inside TLS.
func TestTLS(t *testing.T) {
	caFile, certFile, keyFile := testCA(t)
	tlsConfig, err := client.TLSConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	ini := "auth_token = s3cret\ntls_cert = " + certFile + "\ntls_key = " + keyFile + "\n"
	h := startHostWith(t, hostproc.Options{
		Command: []string{filepath.Join(binDir, "host"), "--config", writeConfig(t, ini), "--plugin=pool"},
		TLS:     tlsConfig,
	})
	if !strings.HasPrefix(h.URL, "wss://") {
		t.Fatalf("host announced %s, want wss://", h.URL)
	}
	r := clRun(t, "--url", h.URL, "--tls-ca", caFile, "--token", "s3cret", "--protocol", "json",
		"--clients", "4", "--tasks", "fib,cpu,io,noop", "--pipeline", "4")
	if r.code != client.ExitOK || num(t, r.summary, "ok") != 16 {
		t.Errorf("client over wss://: exit %d, %v right", r.code, r.summary["ok"])
	}
	r = clRun(t, "--url", h.URL, "--token", "s3cret", "--clients", "1", "--tasks", "cpu")
	if r.code != client.ExitIncorrect || !strings.Contains(r.stdout+r.stderr, "certificate") {
		t.Errorf("client that does not trust the CA: exit %d; want 1 and a certificate error", r.code)
	}
	plain := "ws://" + h.addr + "/ws"
	if ws, _, err := websocket.DefaultDialer.Dial(plain, http.Header{"Authorization": {"Bearer s3cret"}}); err == nil {
		ws.Close()
		t.Error("plain ws:// to the TLS port was served")
	}
	d := websocket.Dialer{TLSClientConfig: tlsConfig}
	if _, resp, err := d.Dial(h.URL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wss:// without the token: %v, want 401", err)
	}
	hc := http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	resp, err := hc.Get("https://" + h.addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("https /healthz: %v", err)
	}
	resp.Body.Close()
}

// TestTLSBadCertificate: a certificate that cannot be loaded is a bad
// configuration value: exit 2, one line naming the key.
func TestTLSBadCertificate(t *testing.T) {
	_, certFile, _ := testCA(t)
	ini := "tls_cert = " + certFile + "\ntls_key = " + certFile + "\n" // a certificate is no key
	_, stderr, code := errRunHost(t, "--config", writeConfig(t, ini))
	if code != 2 || !strings.Contains(stderr, "[server] tls_cert") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q; want 2 and one line naming [server] tls_cert", code, stderr)
	}
}
