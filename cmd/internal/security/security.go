// Package security is how tnl's commands read their secrets and set up
// TLS, on both sides: the shared secret files of the client commands and
// of tnl-server, the client's TLS configuration (--tls, --tls-ca,
// --tls-cert, --tls-key) and the server's (--tls-cert, --tls-key,
// --tls-client-ca), and the words and hints for a session the server
// refused or a handshake that failed.
//
// Every file is read whole and bounded (MaxFile), so that a mistaken path
// (/dev/zero, a log file) fails at once instead of hanging or filling
// memory, and a secret is refused, never cleaned, when it could not travel
// as one value of a request line.
//
// It does not parse flags or read the environment (package cli does, and
// says where each path came from), and it never dials.
package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
)

// MaxFile bounds what is read from a secret, certificate, key or CA file.
const MaxFile = 1 << 20

// File is a path and where it came from ("--tls-ca", "$TNL_TLS_CA"), for
// messages. The zero File is "not given".
type File struct {
	Path, From string
}

// ReadSecret reads a secret file: the whole file, white space around it
// removed. It must then be one non-empty line without a comma, a control
// character or white space inside, because it travels as one value of a
// request line; anything else is refused with a usage error (status 2)
// rather than cleaned into a secret the other side would not know. from
// names where path came from ("--auth-token-file", "$TNL_...").
func ReadSecret(path, from string) (string, error) {
	b, err := readFile(path)
	if err != nil {
		return "", usage(fmt.Errorf("%s %q: %w", from, path, err))
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", usage(fmt.Errorf("%s %q: the file is empty", from, path))
	case strings.ContainsFunc(tok, func(r rune) bool { return r == ',' || r < 0x20 || r == 0x7f }):
		return "", usage(fmt.Errorf("%s %q: the secret must be one line without commas", from, path))
	}
	return tok, nil
}

// ClientTLS builds the client's TLS configuration: TLS 1.3 or later,
// trusting the certificate authorities in ca (else the system's), and
// presenting the certificate in cert with its key when both are given.
// Every error is a usage error (status 2) that names the flag or variable.
func ClientTLS(ca, cert, key File) (*tls.Config, error) {
	// TLS 1.3 only, as tnl-server: nothing older is worth negotiating
	// with a server that is ours.
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if ca.Path != "" {
		pool, err := readPool(ca.Path)
		if err != nil {
			return nil, usage(fmt.Errorf("%s %q: %w", ca.From, ca.Path, err))
		}
		cfg.RootCAs = pool
	}
	switch {
	case cert.Path != "" && key.Path != "":
		pair, err := readKeyPair(cert.Path, key.Path)
		if err != nil {
			return nil, usage(fmt.Errorf("%s %q, %s %q: %w", cert.From, cert.Path, key.From, key.Path, err))
		}
		cfg.Certificates = []tls.Certificate{pair}
	case cert.Path != "":
		return nil, usage(fmt.Errorf("%s needs --tls-key (or $TNL_TLS_KEY) too", cert.From))
	case key.Path != "":
		return nil, usage(fmt.Errorf("%s needs --tls-cert (or $TNL_TLS_CERT) too", key.From))
	}
	return cfg, nil
}

// ServerTLS builds tnl-server's TLS configuration from --tls-cert,
// --tls-key and --tls-client-ca: nil when the server serves no TLS; with a
// client CA, every client must present a certificate it signed. Every
// error is a usage error (status 2).
func ServerTLS(cert, key, clientCA string) (*tls.Config, error) {
	if cert == "" && key == "" {
		if clientCA != "" {
			return nil, usage(errors.New("--tls-client-ca needs --tls-cert and --tls-key"))
		}
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, usage(errors.New("--tls-cert and --tls-key go together"))
	}
	pair, err := readKeyPair(cert, key)
	if err != nil {
		return nil, usage(fmt.Errorf("--tls-cert/--tls-key: %w", err))
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}}
	if clientCA != "" {
		pool, err := readPool(clientCA)
		if err != nil {
			return nil, usage(fmt.Errorf("--tls-client-ca %s: %w", clientCA, err))
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

var errNoPEM = errors.New("no PEM certificate found")

// readPool reads a PEM file of certificate authorities.
func readPool(path string) (*x509.CertPool, error) {
	pem, err := readFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errNoPEM
	}
	return pool, nil
}

// readKeyPair is tls.LoadX509KeyPair with bounded reads.
func readKeyPair(cert, key string) (tls.Certificate, error) {
	c, err := readFile(cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	k, err := readFile(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(c, k)
}

// readFile reads a file of at most MaxFile bytes; a larger one is refused.
// Errors are the bare cause ("no such file or directory").
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return nil, unwrapPath(err)
	}
	if len(b) > MaxFile {
		return nil, errors.New("larger than 1 MiB")
	}
	return b, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func usage(err error) error { return &exitcode.Error{Code: exitcode.Usage, Err: err} }
