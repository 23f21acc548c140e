package server_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
)

// Embed a lock server in a Go program, over the embedded lock table, and
// speak the legacy wire to it as tcpnetlock's clients and nc do.
func Example() {
	srv := server.New(lockd.New(lockd.Options{}), server.Config{
		DeadPeerTimeout: 30 * time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	})
	l, err := server.Listen(context.Background(), "127.0.0.1:0", 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(l)

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	r := bufio.NewReader(c)
	fmt.Fprint(c, "lock,name:nightly-backup\n")
	ok, _ := r.ReadString('\n')
	fmt.Print(ok)
	fmt.Fprint(c, "release\n")
	released, _ := r.ReadString('\n')
	fmt.Print(released)
	c.Close()

	// Shutdown stops accepting, closes every connection (releasing
	// its locks) and waits for the connections to end.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// ok
	// released
}
