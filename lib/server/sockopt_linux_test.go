package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
)

// keepListener hands every accepted *net.TCPConn to the test as well, so that
// the test can read the socket options the server set on it.
type keepListener struct {
	net.Listener
	accepted chan *net.TCPConn
}

func (l *keepListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		l.accepted <- tc
	}
	return c, err
}

// tcpOpts are the dead-peer options of one socket, as the kernel has them.
type tcpOpts struct {
	UserTimeoutMS, KeepAlive, KeepIdle, KeepIntvl, KeepCnt int
}

func readTCPOpts(t *testing.T, c *net.TCPConn) tcpOpts {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var o tcpOpts
	var errs []error
	get := func(fd, level, opt int, dst *int) {
		v, err := unix.GetsockoptInt(fd, level, opt)
		if err != nil {
			errs = append(errs, err)
		}
		*dst = v
	}
	if err := rc.Control(func(fd uintptr) {
		get(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, &o.UserTimeoutMS)
		get(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE, &o.KeepAlive)
		get(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, &o.KeepIdle)
		get(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, &o.KeepIntvl)
		get(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPCNT, &o.KeepCnt)
	}); err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Fatalf("getsockopt: %v", errs)
	}
	return o
}

// TestAcceptedSocketOptions: Serve sets TCP_USER_TIMEOUT and keepalive on
// every accepted connection, plain or TLS, from Config.DeadPeerTimeout (see
// lib/internal/sockopt): for 20s, a user timeout of 0.9 × 20s = 18000ms, and
// keepalive probes after 10s idle, 2s apart, 4 of them. Without the user
// timeout a holder that vanished while the server had unacknowledged data
// on its connection would keep its lock until the kernel gives up, about
// 15 minutes (tcp_retries2), whatever the dead-peer timeout says: keepalive
// probes are not sent while data is in flight.
//
// The listener is a plain net.Listen one, not server.Listen, so that the
// options checked are the ones Serve sets, not the listener's: Go's own
// default for accepted connections is keepalive after 15s, every 15s, 9
// probes, and no user timeout, all different from what is wanted here.
func TestAcceptedSocketOptions(t *testing.T) {
	const deadPeer = 20 * time.Second
	want := tcpOpts{UserTimeoutMS: 18000, KeepAlive: 1, KeepIdle: 10, KeepIntvl: 2, KeepCnt: 4}

	ca, caKey := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{leaf(t, ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)}}

	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plain", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			kl := &keepListener{Listener: inner, accepted: make(chan *net.TCPConn, 1)}
			var l net.Listener = kl
			if tc.tls {
				l = tls.NewListener(kl, srvTLS)
			}
			srv := server.New(lockd.New(lockd.Options{}), server.Config{DeadPeerTimeout: deadPeer, Logger: slog.New(slog.DiscardHandler)})
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			t.Cleanup(func() {
				srv.Close()
				<-served
			})

			var nc net.Conn
			if tc.tls {
				nc, err = tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool})
			} else {
				nc, err = net.Dial("tcp", l.Addr().String())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(ioTimeout))
			// The answer comes from the connection's goroutine, which
			// Serve starts only after it has set the options.
			if _, err := io.WriteString(nc, "lock,name:opts\n"); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 3)
			if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "ok\n" {
				t.Fatalf("lock: got %q (err %v), want \"ok\\n\"", buf, err)
			}
			var sc *net.TCPConn
			select {
			case sc = <-kl.accepted:
			default:
				t.Fatal("the listener saw no accepted connection")
			}
			if got := readTCPOpts(t, sc); got != want {
				t.Errorf("accepted socket: %+v, want %+v", got, want)
			}
		})
	}
}
