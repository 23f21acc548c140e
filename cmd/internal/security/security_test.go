package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/lib/client"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want, err string
	}{
		{"plain", "s3cret\n", "s3cret", ""},
		{"padded", "\n  s3cret\t \r\n\n", "s3cret", ""},
		{"colon", "a:b=c", "a:b=c", ""},
		{"empty", "", "", "the file is empty"},
		{"blank", " \n\t\n", "", "the file is empty"},
		{"comma", "a,b", "", "the secret must be one line without commas"},
		{"two lines", "a\nb\n", "", "the secret must be one line without commas"},
		{"cr", "a\rb", "", "the secret must be one line without commas"},
		{"nul", "a\x00b", "", "the secret must be one line without commas"},
	} {
		p := write(t, dir, strings.ReplaceAll(tc.name, " ", "_"), tc.content)
		got, err := ReadSecret(p, "--auth-token-file")
		if tc.err != "" {
			want := fmt.Sprintf("--auth-token-file %q: %s", p, tc.err)
			if err == nil || err.Error() != want || exitcode.Of(err) != exitcode.Usage {
				t.Errorf("%s: got %q, %v (status %d); want %q, status 2", tc.name, got, err, exitcode.Of(err), want)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := ReadSecret(filepath.Join(dir, "nope"), "$TNL_AUTH_TOKEN_FILE"); err == nil ||
		!strings.HasSuffix(err.Error(), `/nope": no such file or directory`) || !strings.HasPrefix(err.Error(), "$TNL_AUTH_TOKEN_FILE ") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ReadSecret(dir, "--auth-token-file"); err == nil || !strings.HasSuffix(err.Error(), ": is a directory") {
		t.Errorf("directory: %v", err)
	}
	big := write(t, dir, "big", strings.Repeat("x", MaxFile+1))
	if _, err := ReadSecret(big, "--auth-token-file"); err == nil || !strings.HasSuffix(err.Error(), ": larger than 1 MiB") {
		t.Errorf("big file: %v", err)
	}
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

// TestClientTLS: what the client trusts and presents, and each refusal in
// the words of the flag or variable it came from.
func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := pemFiles(t, dir)
	secret := write(t, dir, "secret", "s3cret\n")
	big := write(t, dir, "big.pem", strings.Repeat("x", MaxFile+1))
	cfg, err := ClientTLS(File{}, File{}, File{})
	if err != nil || cfg.MinVersion != tls.VersionTLS13 || cfg.RootCAs != nil || len(cfg.Certificates) != 0 {
		t.Fatalf("nothing given: %+v, %v; want TLS 1.3 with the system's roots", cfg, err)
	}
	cfg, err = ClientTLS(File{ca, "--tls-ca"}, File{cert, "--tls-cert"}, File{key, "$TNL_TLS_KEY"})
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("all given: %+v, %v", cfg, err)
	}
	nope := filepath.Join(dir, "nope")
	for _, tc := range []struct {
		ca, cert, key File
		want          string
	}{
		{File{}, File{cert, "--tls-cert"}, File{}, "--tls-cert needs --tls-key (or $TNL_TLS_KEY) too"},
		{File{}, File{}, File{key, "$TNL_TLS_KEY"}, "$TNL_TLS_KEY needs --tls-cert (or $TNL_TLS_CERT) too"},
		{File{key, "--tls-ca"}, File{}, File{}, fmt.Sprintf("--tls-ca %q: no PEM certificate found", key)},
		{File{nope, "$TNL_TLS_CA"}, File{}, File{}, fmt.Sprintf("$TNL_TLS_CA %q: no such file or directory", nope)},
		{File{big, "--tls-ca"}, File{}, File{}, fmt.Sprintf("--tls-ca %q: larger than 1 MiB", big)},
		{File{}, File{cert, "--tls-cert"}, File{secret, "--tls-key"}, fmt.Sprintf("--tls-cert %q, --tls-key %q: tls: failed to find any PEM data in key input", cert, secret)},
		{File{}, File{big, "--tls-cert"}, File{key, "--tls-key"}, fmt.Sprintf("--tls-cert %q, --tls-key %q: larger than 1 MiB", big, key)},
	} {
		_, err := ClientTLS(tc.ca, tc.cert, tc.key)
		if err == nil || err.Error() != tc.want || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%v %v %v: got %v (status %d), want %q", tc.ca, tc.cert, tc.key, err, exitcode.Of(err), tc.want)
		}
	}
}

// TestServerTLS: tnl-server's configuration, with the same bounded reads
// as the client's.
func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := pemFiles(t, dir)
	big := write(t, dir, "big.pem", strings.Repeat("x", MaxFile+1))
	if cfg, err := ServerTLS("", "", ""); cfg != nil || err != nil {
		t.Fatalf("no TLS: %+v, %v", cfg, err)
	}
	cfg, err := ServerTLS(cert, key, "")
	if err != nil || cfg.MinVersion != tls.VersionTLS13 || len(cfg.Certificates) != 1 || cfg.ClientAuth != tls.NoClientCert {
		t.Fatalf("cert and key: %+v, %v", cfg, err)
	}
	cfg, err = ServerTLS(cert, key, ca)
	if err != nil || cfg.ClientCAs == nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("with a client CA: %+v, %v", cfg, err)
	}
	for _, tc := range []struct {
		cert, key, ca string
		want          string
	}{
		{"", "", ca, "--tls-client-ca needs --tls-cert and --tls-key"},
		{cert, "", "", "--tls-cert and --tls-key go together"},
		{"", key, "", "--tls-cert and --tls-key go together"},
		{cert, big, "", "--tls-cert/--tls-key: larger than 1 MiB"},
		{cert, key, key, "--tls-client-ca " + key + ": no PEM certificate found"},
		{cert, key, big, "--tls-client-ca " + big + ": larger than 1 MiB"},
	} {
		_, err := ServerTLS(tc.cert, tc.key, tc.ca)
		if err == nil || err.Error() != tc.want || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%q %q %q: got %v (status %d), want %q", tc.cert, tc.key, tc.ca, err, exitcode.Of(err), tc.want)
		}
	}
}

func TestDialError(t *testing.T) {
	addr := "127.0.0.1:7654"
	refused := func(msg string) error {
		return fmt.Errorf("server %s refused the session: %w", addr, &client.ServerError{Msg: msg})
	}
	for _, tc := range []struct {
		o         client.Options
		err       error
		msg, hint string
	}{
		{client.Options{Addr: addr}, refused("authentication required"),
			"server 127.0.0.1:7654 refused the session: authentication required",
			"the server wants its shared secret: give --auth-token-file FILE or set TNL_AUTH_TOKEN_FILE"},
		{client.Options{Addr: addr}, refused("authentication failed"),
			"server 127.0.0.1:7654 refused the session: authentication failed",
			"the secret in --auth-token-file (or $TNL_AUTH_TOKEN_FILE) is not the server's"},
		{client.Options{Addr: addr}, refused("too many connections"),
			"server 127.0.0.1:7654 refused the session: too many connections", ""},
		{client.Options{Addr: addr}, fmt.Errorf("cannot talk to server %s: %w", addr, io.EOF),
			"cannot talk to server 127.0.0.1:7654: EOF", "if the server serves TLS, give --tls-ca FILE (or --tls)"},
		{client.Options{Addr: addr, TLS: &tls.Config{}}, fmt.Errorf("cannot talk to server %s: %w", addr, io.EOF),
			"cannot talk to server 127.0.0.1:7654: EOF", "if the server wants a client certificate, give --tls-cert FILE and --tls-key FILE"},
		{client.Options{Addr: addr, TLS: &tls.Config{}}, fmt.Errorf("cannot talk to server %s: %w", addr, x509.UnknownAuthorityError{}),
			"cannot talk to server 127.0.0.1:7654: x509: certificate signed by unknown authority",
			"give the certificate authority that signed the server's certificate with --tls-ca FILE"},
		{client.Options{Addr: addr}, errors.New("cannot reach server 127.0.0.1:7654: connection refused"),
			"cannot reach server 127.0.0.1:7654: connection refused", ""},
	} {
		err := DialError(tc.o, tc.err)
		if err.Error() != tc.msg || exitcode.HintOf(err) != tc.hint || exitcode.Of(err) != exitcode.Unreachable {
			t.Errorf("%v:\n got  %q hint %q status %d\n want %q hint %q status 125", tc.err, err, exitcode.HintOf(err), exitcode.Of(err), tc.msg, tc.hint)
		}
	}
}
