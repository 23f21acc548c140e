package server_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/tnl-lock/tnl/lib/server"
)

// A surge of connections that ends makes the server return its free memory,
// and say so with the surge's peak. (The rules themselves are tested in
// TestReclaimerRules.)
func TestReclaimAfterSurge(t *testing.T) {
	ts := start(t, server.Config{})
	var conns []net.Conn
	for range server.SurgeMin + 10 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	eventually(t, "all connections open on the server's side", func() bool {
		return ts.Stats().Connections == int64(len(conns))
	})
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "a return of free memory", func() bool { return server.Reclaims(ts.Server) > 0 })
	if want := fmt.Sprintf(`msg="returned free memory to the system after a surge of connections" peak=%d `, len(conns)); !strings.Contains(ts.logs.String(), want) {
		t.Errorf("no log line %q:\n%s", want, ts.logs.String())
	}
	// The server goes on serving.
	p := dial(t, ts.addr)
	p.roundtrip(".ping\n", "pong\n")
	p.close()
}
