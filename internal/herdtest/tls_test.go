package herdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
)

// writeCerts makes a CA and a certificate per server (named for the server,
// as peer TLS requires) and returns the CA's path and each server's cert and
// key paths.
func writeCerts(t *testing.T, names []string) (ca string, certs map[string][2]string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ca = filepath.Join(dir, "ca.pem")
	writePEM(t, ca, "CERTIFICATE", caDER)
	certs = map[string][2]string{}
	for i, name := range names {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		cert, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		writePEM(t, cert, "CERTIFICATE", der)
		writePEM(t, keyPath, "EC PRIVATE KEY", keyDER)
		certs[name] = [2]string{cert, keyPath}
	}
	return ca, certs
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHerd_PeerLinksOverTLS(t *testing.T) {
	var names []string
	for n := range SeedTopology {
		names = append(names, n)
	}
	ca, certs := writeCerts(t, names)
	h := Start(t, Options{Secret: "s3cret-s3cret-s3cret", Configure: func(c *config.Config) {
		c.Peers.TLSCA = ca
		for i := range c.Servers {
			c.Servers[i].TLSCert, c.Servers[i].TLSKey = certs[c.Servers[i].Name][0], certs[c.Servers[i].Name][1]
		}
	}})
	reply := h.Dial("Alford").Ask("IAMAT kiwi +1+1 " + now())
	Eventually(t, 5*time.Second, func() error {
		got, _ := LookupAT(h.Addr("Holiday"), "kiwi")
		if got != reply {
			return fmt.Errorf("Holiday has %q; want %q", got, reply)
		}
		return nil
	})
	// Clients still speak plain text on the same port, and a plain-text
	// HELLO is refused when peers must use TLS.
	c := h.Dial("Ball")
	hello := "HERD-HELLO 1 Welsh Ball 1 0 0123456789abcdef0123456789abcdef -"
	if got := c.Ask(hello); got != "? "+hello {
		t.Errorf("plain-text hello with peer TLS on got %q", got)
	}
}
