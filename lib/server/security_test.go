package server_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
	"github.com/tnl-lock/tnl/test/deadline"
)

func secureServer(t *testing.T, cfg server.Config, tlsCfg *tls.Config) string {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv := server.New(lockd.New(lockd.Options{}), cfg)
	l, err := server.Listen(context.Background(), "127.0.0.1:0", cfg.DeadPeerTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// exchange sends one line on a fresh connection and returns everything the
// server sent until it closed the connection.
func exchange(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, line)
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return string(b)
}

func TestAuthRefusesLegacyAndExtensionClientsWithoutToken(t *testing.T) {
	addr := secureServer(t, server.Config{AuthToken: "s3cret", AdminToken: "adm1n"}, nil)
	for _, tc := range []struct{ line, want string }{
		{"lock,name:x\n", "err,authentication required\n"},
		{"lock,name:x,client-id:me\n", "err,authentication required\n"},
		{"lock,name:x,auth:wrong\n", "err,authentication failed\n"},
		{".stats\n", "err,authentication required\n"},
		{".holders\n", "err,authentication required\n"},
		{".session\n", "err,authentication required\n"},
		{".ping\n", "pong\n"},
		{"lock,name:x,auth:s3cret\nrelease\n", "ok\nreleased\n"},
		{"lock,name:x,auth:adm1n\nrelease\n", "ok\nreleased\n"},
	} {
		if got := exchange(t, addr, tc.line); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	ctx := context.Background()
	if _, err := client.Dial(ctx, client.Options{Addr: addr}); err == nil || err.Error() != "server "+addr+" refused the session: authentication required" {
		t.Fatalf("Dial without token: %v", err)
	}
	c, err := client.Dial(ctx, client.Options{Addr: addr, AuthToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Lock(ctx, "y", client.LockOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownNeedsAdminToken(t *testing.T) {
	stopped := make(chan struct{})
	addr := secureServer(t, server.Config{AdminToken: "adm1n", OnShutdown: func() { close(stopped) }}, nil)
	if got := exchange(t, addr, ".server-shutdown\n"); got != "bad-action\n" {
		t.Fatalf("got %q", got)
	}
	if got := exchange(t, addr, ".server-shutdown,auth:nope\n"); got != "bad-action\n" {
		t.Fatalf("got %q", got)
	}
	if got := exchange(t, addr, ".ping\n"); got != "pong\n" {
		t.Fatalf("server stopped serving: %q", got)
	}
	select {
	case <-stopped:
		t.Fatal("OnShutdown called without the admin token")
	default:
	}
	if got := exchange(t, addr, ".server-shutdown,auth:adm1n\n"); got != "shutting-down\n" {
		t.Fatalf("got %q", got)
	}
	deadline.Within(t, 5*time.Second, stopped, "OnShutdown after .server-shutdown with the admin token")
}

func TestBreakTakesLockFromSessionAndLegacyHolders(t *testing.T) {
	addr := secureServer(t, server.Config{AdminToken: "adm1n"}, nil)
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "stuck"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lease, err := c.Lock(ctx, "a", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A waiter is granted as soon as the lock is broken.
	w, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "next"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got := make(chan error, 1)
	go func() {
		_, err := w.Lock(ctx, "a", client.LockOptions{Wait: client.Forever})
		got <- err
	}()

	if err := client.Break(ctx, client.Options{Addr: addr}, "a", "wrong"); err == nil || err.Error() != "server refused: admin token required" {
		t.Fatalf("break with a wrong token: %v", err)
	}
	if err := client.Break(ctx, client.Options{Addr: addr}, "a", "adm1n"); err != nil {
		t.Fatal(err)
	}
	deadline.Within(t, 5*time.Second, lease.Done(), `the broken lease to end (the client ignores "lost"?)`)
	if !errors.Is(lease.Err(), client.ErrLost) {
		t.Fatalf("lease err %v", lease.Err())
	}
	if err := deadline.Within(t, 5*time.Second, got, "the waiter's grant after the break"); err != nil {
		t.Fatalf("waiter: %v", err)
	}
	var se *client.ServerError
	if err := client.Break(ctx, client.Options{Addr: addr}, "nobody", "adm1n"); !errors.As(err, &se) || se.Msg != "not held" {
		t.Fatalf("break of a free lock: %v", err)
	}

	// A legacy holder (parked, idle) learns it by the connection closing.
	lc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	io.WriteString(lc, "lock,name:legacy\n")
	r := bufio.NewReader(lc)
	if l, _ := r.ReadString('\n'); l != "ok\n" {
		t.Fatalf("legacy lock: %q", l)
	}
	if err := client.Break(ctx, client.Options{Addr: addr}, "legacy", "adm1n"); err != nil {
		t.Fatal(err)
	}
	lc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("legacy holder: read %q, %v; want EOF", rest, err)
	}
}

func TestTLS(t *testing.T) {
	ca, caKey := newCA(t)
	srvCert := leaf(t, ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	cliCert := leaf(t, ca, caKey, "client", x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	addr := secureServer(t, server.Config{}, &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{srvCert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	ctx := context.Background()

	c, err := client.Dial(ctx, client.Options{Addr: addr, TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cliCert}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lease, err := c.Lock(ctx, "t", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(); err != nil {
		t.Fatal(err)
	}

	// Without a client certificate, or with TLS 1.2, or without trusting
	// the server's CA: refused.
	for name, cfg := range map[string]*tls.Config{
		"no client cert": {RootCAs: pool},
		"tls 1.2":        {RootCAs: pool, Certificates: []tls.Certificate{cliCert}, MaxVersion: tls.VersionTLS12},
		"unknown CA":     {Certificates: []tls.Certificate{cliCert}},
	} {
		c, err := client.Dial(ctx, client.Options{Addr: addr, TLS: cfg, DialTimeout: 5 * time.Second})
		if err == nil {
			// TLS 1.3 reports a refused client certificate on first read.
			_, err = c.Lock(ctx, "t", client.LockOptions{})
			c.Close()
		}
		if err == nil {
			t.Errorf("%s: connection accepted", name)
		}
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tnl test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
