package cli

import (
	"crypto/tls"
	"fmt"
	"strconv"

	"github.com/tnl-lock/tnl/cmd/internal/security"
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

// Load reads the secret and builds the TLS configuration (with package
// security) from the flags, else from $TNL_AUTH_TOKEN_FILE, $TNL_TLS,
// $TNL_TLS_CA, $TNL_TLS_CERT and $TNL_TLS_KEY. tlsConfig is nil when TLS is
// off. Every error is a usage error (status 2) that names the flag or the
// variable.
func (s *Security) Load(getenv func(string) string) (token string, tlsConfig *tls.Config, err error) {
	if f := pick(s.AuthTokenFile, "--auth-token-file", getenv, "TNL_AUTH_TOKEN_FILE"); f.Path != "" {
		if token, err = security.ReadSecret(f.Path, f.From); err != nil {
			return "", nil, err
		}
	}
	ca := pick(s.TLSCA, "--tls-ca", getenv, "TNL_TLS_CA")
	cert := pick(s.TLSCert, "--tls-cert", getenv, "TNL_TLS_CERT")
	key := pick(s.TLSKey, "--tls-key", getenv, "TNL_TLS_KEY")
	on := s.TLS || ca.Path != "" || cert.Path != "" || key.Path != ""
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
	cfg, err := security.ClientTLS(ca, cert, key)
	if err != nil {
		return "", nil, err
	}
	return token, cfg, nil
}

// pick returns the flag's value, else the variable's, with where it came
// from, for messages.
func pick(flag, flagName string, getenv func(string) string, env string) security.File {
	if flag != "" {
		return security.File{Path: flag, From: flagName}
	}
	if v := getenv(env); v != "" {
		return security.File{Path: v, From: "$" + env}
	}
	return security.File{}
}
