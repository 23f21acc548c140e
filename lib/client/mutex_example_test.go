package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
)

// exampleServer starts an in-process server for an example; normally
// tnl-server runs elsewhere.
func exampleServer() (addr string, stop func()) {
	srv := server.New(lockd.New(lockd.Options{}), server.Config{Logger: slog.New(slog.DiscardHandler)})
	l, err := server.Listen(context.Background(), "127.0.0.1:0", 0)
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), func() { srv.Close() }
}

// A Mutex over the network, as a DLM's or Consul's lock is used: the
// goroutines of this process and every other client of the server take
// turns.
func Example_mutex() {
	addr, stop := exampleServer()
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	m := c.Mutex("inventory", client.LockOptions{})
	var wg sync.WaitGroup
	counter := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Lock(ctx); err != nil {
				fmt.Println(err)
				return
			}
			counter++ // only one goroutine, of one client, at a time
			if err := m.Unlock(); err != nil {
				fmt.Println(err)
			}
		}()
	}
	wg.Wait()
	fmt.Println("counter:", counter)

	// Another client finds it held, without waiting.
	other, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "other"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer other.Close()
	if err := m.Lock(ctx); err != nil {
		fmt.Println(err)
		return
	}
	ok, err := other.Mutex("inventory", client.LockOptions{}).TryLock(ctx)
	fmt.Println("other got it:", ok, err)
	fmt.Println(m.Unlock())
	fmt.Println(m.Unlock())
	// Output:
	// counter: 4
	// other got it: false <nil>
	// <nil>
	// mutex not locked
}

// Take a lease that outlives this program: another run, or another host,
// renews or releases it with its ID. (This example runs once the embedded
// server knows leases; until then it is only compiled.)
func ExampleClient_AcquireLease() {
	addr, stop := exampleServer()
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "cron@etl-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	lease, err := c.AcquireLease(ctx, "nightly", 2*time.Hour, client.LockOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("holding", lease.Name, "with fencing token", lease.Token, "for", lease.TTL)
	// Keep lease.ID (a secret) where the next step finds it: tnl-lock
	// --ttl prints it as TNL_LEASE.

	st, err := c.Renew(ctx, lease.ID, time.Hour)
	fmt.Println("renewed:", st.Name, st.Token, st.TTL, err)
	fmt.Println("released:", c.ReleaseLease(ctx, lease.ID))
	_, err = c.LeaseHeld(ctx, lease.ID)
	fmt.Println("held after release:", err)
	// Output:
	// holding nightly with fencing token 1 for 2h0m0s
	// renewed: nightly 1 1h0m0s <nil>
	// released: <nil>
	// held after release: server refused: no such lease
}
