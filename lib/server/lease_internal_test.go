package server

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"
	"unsafe"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// TestLeaseUndelivered: a lease granted to a connection that cannot answer
// it any more is released at once, whichever way the grant comes: queued
// but never answered when the connection ends, granted after it ended, or
// answered in a write that failed. Nobody knows its id.
func TestLeaseUndelivered(t *testing.T) {
	for _, how := range []string{"queued", "after the end", "unsent"} {
		t.Run(how, func(t *testing.T) {
			tb := lockd.New(lockd.Options{})
			s := New(tb, Config{Logger: slog.New(slog.DiscardHandler)})
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			c := newConn(s, a)
			c.newOwner()
			other := tb.NewOwner(table.Info{}, nopNotifier{})
			held, res, _ := tb.Acquire(other, table.Request{Name: "x"})
			if res != table.Granted {
				t.Fatal("not granted")
			}
			id, _ := protocol.NewLeaseID()
			key := table.LeaseKey(protocol.LeaseKey(id))
			lh, res, err := tb.Acquire(c.owner, table.Request{Name: "x", Wait: true, Lease: &table.LeaseRequest{Key: key, TTL: time.Minute}})
			if res != table.Queued || err != nil {
				t.Fatalf("lease request: %v %v", res, err)
			}
			switch how {
			case "queued":
				tb.Release(held) // Granted queues it for c's goroutine
				tb.ReleaseAll(c.owner)
				c.letGo()
			case "after the end":
				tb.ReleaseAll(c.owner) // as run does: the wait is withdrawn...
				if _, res, _ := tb.Acquire(c.owner, table.Request{Name: "x", Wait: true, Lease: &table.LeaseRequest{Key: key, TTL: time.Minute}}); res != table.Queued {
					t.Fatalf("lease request again: %v", res)
				}
				c.letGo()
				tb.Release(held) // ...but say a grant was on its way
			case "unsent":
				tb.Release(held)
				c.takeEvents()
				c.leases().unsent = append(c.leases().unsent, lh)
				tb.ReleaseAll(c.owner)
				c.letGo()
			}
			if _, err := tb.LookupLease(key); !errors.Is(err, table.ErrNoLease) {
				t.Errorf("the lease nobody knows is still held (%v)", err)
			}
			if st := tb.Counters(); st.Leases != 0 || st.Held != 0 {
				t.Errorf("counters %+v, want nothing held", st)
			}
		})
	}
}

type nopNotifier struct{}

func (nopNotifier) Granted(table.Holder)     {}
func (nopNotifier) Lost(table.Holder, error) {}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Second:         "2s",
		90 * time.Second:        "1m30s",
		2 * time.Hour:           "2h",
		90 * time.Minute:        "1h30m",
		time.Hour + time.Second: "1h0m1s",
		1500 * time.Millisecond: "1.5s",
		200 * time.Millisecond:  "200ms",
		10 * time.Minute:        "10m",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestConnSize: a conn stays in the 512-byte size class. Every legacy
// holder is one, so a field that pushes it over costs every holder 128
// bytes more; what leases and maximum holds need is behind one pointer.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 512 {
		t.Errorf("a conn takes %d bytes, over 512", n)
	}
}
