package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/lib/client"
)

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
		switch {
		case errors.Is(se, client.ErrAuthRequired):
			return &exitcode.Error{Code: exitcode.Unreachable, Err: err,
				Hint: "the server wants its shared secret: give --auth-token-file FILE or set TNL_AUTH_TOKEN_FILE"}
		case errors.Is(se, client.ErrAuthFailed):
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
		// A remote alert reaches us as crypto/tls's unexported alert type
		// (tls.AlertError is only for QUIC), so its words are all there is.
		return "the server wants a client certificate: give --tls-cert FILE and --tls-key FILE"
	case o.TLS != nil && len(o.TLS.Certificates) == 0 &&
		(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)):
		// TLS 1.3 tells a refused client of its missing certificate only
		// after the handshake, and the alert may be lost to a reset.
		return "if the server wants a client certificate, give --tls-cert FILE and --tls-key FILE"
	case errors.As(err, new(tls.RecordHeaderError)):
		return "the server does not speak TLS: leave out --tls, --tls-ca, --tls-cert and --tls-key"
	}
	return ""
}
