package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pemFiles writes a CA and a leaf certificate with its key into dir.
func pemFiles(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	c := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return write(t, dir, "ca.pem", c), write(t, dir, "cert.pem", c),
		write(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
}

func TestSecurityLoad(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := pemFiles(t, dir)
	secret := write(t, dir, "secret", "s3cret\n")
	other := write(t, dir, "other", "0ther\n")

	// Nothing set: no secret, no TLS.
	var s Security
	tok, cfg, err := s.Load(env(nil))
	if tok != "" || cfg != nil || err != nil {
		t.Fatalf("zero: %q %v %v", tok, cfg, err)
	}

	// Variables, then flags beating them.
	tok, cfg, err = s.Load(env(map[string]string{"TNL_AUTH_TOKEN_FILE": secret, "TNL_TLS_CA": ca}))
	if err != nil || tok != "s3cret" || cfg == nil || cfg.RootCAs == nil || cfg.MinVersion != tls.VersionTLS13 || len(cfg.Certificates) != 0 {
		t.Fatalf("env: %q %+v %v", tok, cfg, err)
	}
	s = Security{AuthTokenFile: other}
	if tok, _, _ = s.Load(env(map[string]string{"TNL_AUTH_TOKEN_FILE": secret})); tok != "0ther" {
		t.Errorf("--auth-token-file must beat $TNL_AUTH_TOKEN_FILE, got %q", tok)
	}

	// --tls alone: system roots. $TNL_TLS.
	s = Security{TLS: true}
	if _, cfg, err = s.Load(env(nil)); err != nil || cfg == nil || cfg.RootCAs != nil {
		t.Errorf("--tls: %+v %v", cfg, err)
	}
	s = Security{}
	for v, on := range map[string]bool{"1": true, "true": true, "0": false, "false": false} {
		if _, cfg, err = s.Load(env(map[string]string{"TNL_TLS": v})); err != nil || (cfg != nil) != on {
			t.Errorf("TNL_TLS=%s: %+v %v", v, cfg, err)
		}
	}
	if _, _, err = s.Load(env(map[string]string{"TNL_TLS": "maybe"})); err == nil || err.Error() != `$TNL_TLS "maybe": want true or false` || exitcode.Of(err) != 2 {
		t.Errorf("TNL_TLS=maybe: %v", err)
	}

	// A client certificate implies TLS; both halves are needed.
	s = Security{TLSCert: cert, TLSKey: key}
	if _, cfg, err = s.Load(env(nil)); err != nil || cfg == nil || len(cfg.Certificates) != 1 {
		t.Errorf("client cert: %+v %v", cfg, err)
	}
	for _, tc := range []struct {
		s    Security
		env  map[string]string
		want string
	}{
		{Security{TLSCert: cert}, nil, "--tls-cert needs --tls-key (or $TNL_TLS_KEY) too"},
		{Security{}, map[string]string{"TNL_TLS_KEY": key}, "$TNL_TLS_KEY needs --tls-cert (or $TNL_TLS_CERT) too"},
		{Security{TLSCA: key}, nil, fmt.Sprintf("--tls-ca %q: no PEM certificate found", key)},
		{Security{TLSCA: filepath.Join(dir, "nope")}, nil, fmt.Sprintf("--tls-ca %q: no such file or directory", filepath.Join(dir, "nope"))},
		{Security{TLSCert: cert, TLSKey: secret}, nil, fmt.Sprintf("--tls-cert %q, --tls-key %q: tls: failed to find any PEM data in key input", cert, secret)},
		{Security{AuthTokenFile: filepath.Join(dir, "nope")}, nil, fmt.Sprintf("--auth-token-file %q: no such file or directory", filepath.Join(dir, "nope"))},
	} {
		_, _, err := tc.s.Load(env(tc.env))
		if err == nil || err.Error() != tc.want || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%+v %v: got %v (status %d), want %q", tc.s, tc.env, err, exitcode.Of(err), tc.want)
		}
	}
}
