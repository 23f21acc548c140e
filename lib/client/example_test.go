package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
)

// Hold a lock while doing work, and stop the work if the lock is lost.
func Example() {
	// A server for the example; normally tnl-server runs elsewhere.
	srv := server.New(lockd.New(lockd.Options{}), server.Config{Logger: slog.New(slog.DiscardHandler)})
	l, _ := server.Listen(context.Background(), "127.0.0.1:0", 0)
	go srv.Serve(l)
	defer srv.Close()

	ctx := context.Background()
	c, err := client.Dial(ctx, client.Options{Addr: l.Addr().String(), ClientID: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	lock, err := c.Lock(ctx, "nightly-backup", client.LockOptions{Wait: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("holding", lock.Name(), "with fencing token", lock.Token())

	work := time.After(10 * time.Millisecond) // the backup
	select {
	case <-work:
		fmt.Println("done")
	case <-lock.Done():
		fmt.Println("lost:", lock.Err())
	}
	if err := lock.Release(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// holding nightly-backup with fencing token 1
	// done
}
