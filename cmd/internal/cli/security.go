package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/lib/client"
)

// Security is how to prove who we are to the server and how to talk to it:
// the shared secret (--auth-token-file) and TLS. Every value may also come
// from the environment, read by Load rather than by kong, so that
// tnl-do's fast path (which skips kong) honours it too; a flag beats its
// variable.
//
// Secrets come from files only, never from the command line or a variable's
// value, where ps(1) and /proc/PID/environ show them.
type Security struct {
	AuthTokenFile string `name:"auth-token-file" placeholder:"FILE" help:"Send the server's shared secret, read from FILE (one line; white space around it is dropped). Default: $TNL_AUTH_TOKEN_FILE."`
	TLS           bool   `name:"tls" help:"Talk TLS (1.3 or later) to the server, trusting the system's certificate authorities. Default: on when $TNL_TLS is true."`
	TLSCA         string `name:"tls-ca" placeholder:"FILE" help:"Trust only the certificate authorities in FILE (PEM) for the server's certificate; implies --tls. Default: $TNL_TLS_CA."`
	TLSCert       string `name:"tls-cert" placeholder:"FILE" help:"Present the client certificate in FILE (PEM) to a server that asks for one; needs --tls-key; implies --tls. Default: $TNL_TLS_CERT."`
	TLSKey        string `name:"tls-key" placeholder:"FILE" help:"The private key (PEM) of --tls-cert. Default: $TNL_TLS_KEY."`
}

// maxFile bounds what is read from a secret or CA file, so that a mistaken
// path (/dev/zero, a log file) fails instead of hanging.
const maxFile = 1 << 20

// Load reads the secret and builds the TLS configuration from the flags,
// else from $TNL_AUTH_TOKEN_FILE, $TNL_TLS, $TNL_TLS_CA, $TNL_TLS_CERT and
// $TNL_TLS_KEY. tlsConfig is nil when TLS is off. Every error is a usage
// error (status 2) that names the flag or the variable.
func (s *Security) Load(getenv func(string) string) (token string, tlsConfig *tls.Config, err error) {
	if path, from := pick(s.AuthTokenFile, "--auth-token-file", getenv, "TNL_AUTH_TOKEN_FILE"); path != "" {
		if token, err = ReadSecret(path, from); err != nil {
			return "", nil, err
		}
	}
	ca, caFrom := pick(s.TLSCA, "--tls-ca", getenv, "TNL_TLS_CA")
	cert, certFrom := pick(s.TLSCert, "--tls-cert", getenv, "TNL_TLS_CERT")
	key, keyFrom := pick(s.TLSKey, "--tls-key", getenv, "TNL_TLS_KEY")
	on := s.TLS || ca != "" || cert != "" || key != ""
	if v := getenv("TNL_TLS"); v != "" && !on {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", nil, usage(fmt.Errorf("$TNL_TLS %q: want true or false", v))
		}
		on = b
	}
	if !on {
		return token, nil, nil
	}
	// TLS 1.3 only, as tnl-server: nothing older is worth negotiating
	// with a server that is ours.
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if ca != "" {
		pem, err := readFile(ca)
		if err != nil {
			return "", nil, usage(fmt.Errorf("%s %q: %w", caFrom, ca, err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return "", nil, usage(fmt.Errorf("%s %q: no PEM certificate found", caFrom, ca))
		}
		cfg.RootCAs = pool
	}
	switch {
	case cert != "" && key != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return "", nil, usage(fmt.Errorf("%s %q, %s %q: %w", certFrom, cert, keyFrom, key, unwrapPath(err)))
		}
		cfg.Certificates = []tls.Certificate{pair}
	case cert != "":
		return "", nil, usage(fmt.Errorf("%s needs --tls-key (or $TNL_TLS_KEY) too", certFrom))
	case key != "":
		return "", nil, usage(fmt.Errorf("%s needs --tls-cert (or $TNL_TLS_CERT) too", keyFrom))
	}
	return token, cfg, nil
}

// pick returns the flag's value, else the variable's, and says where it
// came from, for messages.
func pick(flag, flagName string, getenv func(string) string, env string) (string, string) {
	if flag != "" {
		return flag, flagName
	}
	if v := getenv(env); v != "" {
		return v, "$" + env
	}
	return "", ""
}

// ReadSecret reads a token file as tnl-server does: the whole file, white
// space around it removed. It must then be one non-empty line without a
// comma, a control character or white space inside, because it travels as
// one value of a request line; anything else is refused with a usage error
// (status 2) rather than cleaned into a secret the server would not know.
// from names where path came from ("--auth-token-file", "$TNL_...").
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

// readFile reads a file of at most maxFile bytes; a larger one is refused.
// Errors are the bare cause ("no such file or directory").
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, unwrapPath(err)
	}
	if len(b) > maxFile {
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

// DialError turns the error of client.Dial (or client.Break) with o into
// the status and words of tnl's commands: 125, with a hint when the fix is
// known (the secret, TLS).
func DialError(o client.Options, err error) error {
	addr := o.Addr
	var se *client.ServerError
	if errors.As(err, &se) {
		// "server refused the session: server refused: ..." says "refused"
		// twice; the message alone is enough.
		err = fmt.Errorf("server %s refused the session: %s", addr, se.Msg)
		switch se.Msg {
		case "authentication required":
			return &exitcode.Error{Code: exitcode.Unreachable, Err: err,
				Hint: "the server wants its shared secret: give --auth-token-file FILE or set TNL_AUTH_TOKEN_FILE"}
		case "authentication failed":
			return &exitcode.Error{Code: exitcode.Unreachable, Err: err,
				Hint: "the secret in --auth-token-file (or $TNL_AUTH_TOKEN_FILE) is not the server's"}
		}
		return &exitcode.Error{Code: exitcode.Unreachable, Err: err}
	}
	return &exitcode.Error{Code: exitcode.Unreachable, Err: err, Hint: tlsHint(o, err)}
}

// tlsHint says what to change when a connection failed for a TLS reason
// that a flag fixes; "" otherwise.
func tlsHint(o client.Options, err error) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	msg := err.Error()
	switch {
	case o.TLS == nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		// A TLS server takes our first line for a broken handshake and
		// hangs up without a word.
		return "if the server serves TLS, give --tls-ca FILE (or --tls)"
	case errors.As(err, &ua):
		return "give the certificate authority that signed the server's certificate with --tls-ca FILE"
	case errors.As(err, &hn):
		return "the server's certificate is not for this address: use --server with a name the certificate lists"
	case strings.Contains(msg, "tls: certificate required"):
		return "the server wants a client certificate: give --tls-cert FILE and --tls-key FILE"
	case o.TLS != nil && len(o.TLS.Certificates) == 0 &&
		(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)):
		// TLS 1.3 tells a refused client of its missing certificate only
		// after the handshake, and the alert may be lost to a reset.
		return "if the server wants a client certificate, give --tls-cert FILE and --tls-key FILE"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "the server does not speak TLS: leave out --tls, --tls-ca, --tls-cert and --tls-key"
	}
	return ""
}
