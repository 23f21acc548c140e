package lockd_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

// durable is a table over the state in dir, as tnl-server --state-dir
// makes it, with the table's clock off the wall clock by skew.
type durable struct {
	tb *lockd.Table
	ft *lockd.FileTokens
	fl *lockd.FileLeases
}

func openDurable(t *testing.T, dir string, skew time.Duration) durable {
	t.Helper()
	ft, err := lockd.OpenFileTokens(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := lockd.OpenFileLeases(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w := fl.Warning(); w != nil {
		t.Fatalf("Warning() = %v", w)
	}
	now := func() int64 { return time.Now().Add(skew).UnixNano() }
	return durable{lockd.New(lockd.Options{Tokens: ft, Leases: fl, Now: now}), ft, fl}
}

func (d durable) close(t *testing.T) {
	t.Helper()
	if err := d.fl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.ft.Close(); err != nil {
		t.Fatal(err)
	}
}

func (d durable) lease(t *testing.T, name, key string, r table.Request) table.Lease {
	t.Helper()
	r.Name = name
	r.Lease = &table.LeaseRequest{Key: leaseKey(key), TTL: time.Hour}
	o := d.tb.NewOwner(table.Info{ClientID: "c-" + key, Host: "h", PID: 7, Addr: "10.0.0.1:1"}, nopNotifier{})
	if _, res, err := d.tb.Acquire(o, r); res != table.Granted {
		t.Fatalf("lease %s on %s: %v, %v", key, name, res, err)
	}
	l, err := d.tb.LookupLease(leaseKey(key))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func sameLease(t *testing.T, what string, got, want table.Lease) {
	t.Helper()
	if got.Name != want.Name || got.Mode != want.Mode || got.Token != want.Token || got.TTL != want.TTL ||
		!got.Since.Equal(want.Since) || !got.Expires.Equal(want.Expires) {
		t.Fatalf("%s: %+v, want %+v", what, got, want)
	}
}

// TestLeaseRestart: a table reopened over the same state directory holds
// again the leases of the last one, with their names, modes, tokens, TTLs
// and expiries (a renew's included) and the info of their requests; the
// released ones stay gone, new tokens are above theirs, and the names are
// held: nobody else is granted them. A table whose clock is past their
// Expires drops them, for good.
func TestLeaseRestart(t *testing.T) {
	dir := t.TempDir()
	d := openDurable(t, dir, 0)
	d.lease(t, "x", "a", table.Request{MaxHold: 3 * time.Hour})
	b := d.lease(t, "y", "b", table.Request{Mode: table.Shared})
	c := d.lease(t, "z", "c", table.Request{Limit: 2})
	gone := d.lease(t, "w", "gone", table.Request{})
	if _, err := d.tb.ReleaseLease(leaseKey("gone")); err != nil {
		t.Fatal(err)
	}
	a, err := d.tb.Renew(leaseKey("a"), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d.close(t)

	d = openDurable(t, dir, 0)
	for _, l := range []struct {
		key  string
		want table.Lease
	}{{"a", a}, {"b", b}, {"c", c}} {
		got, err := d.tb.LookupLease(leaseKey(l.key))
		if err != nil {
			t.Fatalf("lease %s after the restart: %v", l.key, err)
		}
		sameLease(t, "lease "+l.key+" after the restart", got, l.want)
	}
	if _, err := d.tb.LookupLease(leaseKey("gone")); err != table.ErrNoLease {
		t.Fatalf("the released lease after the restart: %v, want ErrNoLease", err)
	}
	if c := d.tb.Counters(); c.Leases != 3 || c.Held != 3 {
		t.Fatalf("Counters after the restart: %+v", c)
	}
	o := d.tb.NewOwner(table.Info{}, nopNotifier{})
	for _, r := range []table.Request{{Name: "x"}, {Name: "y"}, {Name: "z", Limit: 2}} {
		if _, res, _ := d.tb.Acquire(o, r); res != table.NotGranted && !(r.Name == "z" && res == table.Granted) {
			t.Fatalf("%s after the restart: %v", r.Name, res)
		}
	}
	if h, res, _ := d.tb.Acquire(o, table.Request{Name: "w"}); res != table.Granted || h.Token() <= gone.Token {
		t.Fatalf("a new lock after the restart: %v, token %d, want above %d", res, h.Token(), gone.Token)
	}
	// The maximum hold came back too: a renew stops at grant+3h.
	if l, err := d.tb.Renew(leaseKey("a"), 5*time.Hour); err != nil || !l.Expires.Equal(a.Since.Add(3*time.Hour)) {
		t.Fatalf("renew after the restart: %+v, %v; want Expires at the maximum hold %v", l, err, a.Since.Add(3*time.Hour))
	}
	a.Expires = a.Since.Add(3 * time.Hour)
	var li table.LockInfo
	d.tb.List("x", table.Cursor{}, 10, &li)
	if p := li.Holders[0]; p.ClientID != "c-a" || p.Host != "h" || p.PID != 7 || p.Addr != "" || !p.Lease || p.Key != leaseKey("a") || !p.Expires.Equal(a.Expires) {
		t.Fatalf("the lease re-held, listed: %+v", p)
	}
	d.close(t)

	// Three hours later by the table's clock: every lease has expired.
	d = openDurable(t, dir, 3*time.Hour)
	if c := d.tb.Counters(); c.Leases != 0 || c.Held != 0 || c.Names != 0 {
		t.Fatalf("Counters after a restart past the Expires: %+v", c)
	}
	d.close(t)
	d = openDurable(t, dir, 0)
	if _, err := d.tb.LookupLease(leaseKey("a")); err != table.ErrNoLease {
		t.Fatalf("an expired lease came back: %v", err)
	}
	if n := len(d.fl.Leases()); n != 0 {
		t.Fatalf("the log holds %d leases, want 0", n)
	}
	d.close(t)
}

// TestLeaseCrash: a log left by a process that never closed it opens; a
// last line cut short is dropped with a warning naming the file and the
// line, and the leases before it are kept; a damaged line with lines after
// it stops the open, with the file and the line.
func TestLeaseCrash(t *testing.T) {
	dir := t.TempDir()
	d := openDurable(t, dir, 0)
	a := d.lease(t, "x", "a", table.Request{})
	d.lease(t, "y", "b", table.Request{})
	// No close: as after kill -9.
	fl, err := lockd.OpenFileLeases(dir)
	if err != nil || fl.Warning() != nil || len(fl.Leases()) != 2 {
		t.Fatalf("reopen without a close: %v, warning %v, %d leases", err, fl.Warning(), len(fl.Leases()))
	}
	fl.Close()

	path := filepath.Join(dir, "leases")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"renew","key":"00`)
	f.Close()
	fl, err = lockd.OpenFileLeases(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "lease state " + path + ": line 3 is damaged (no line end), as a crash in the middle of a write leaves it: dropped"
	if w := fl.Warning(); w == nil || w.Error() != want {
		t.Fatalf("Warning() = %v, want %q", w, want)
	}
	if l := fl.Leases(); len(l) != 2 || l[0].Token != a.Token {
		t.Fatalf("leases kept: %+v", l)
	}
	fl.Close()

	b, _ := os.ReadFile(path)
	if strings.Count(string(b), "\n") != 2 {
		t.Fatalf("the log after the compaction at open:\n%s", b)
	}
	os.WriteFile(path, []byte("{garbage\n"+string(b)), 0o600)
	_, err = lockd.OpenFileLeases(dir)
	want = "lease state " + path + ": line 1 is damaged (invalid character 'g' looking for beginning of object key string), and 2 lines follow it: not starting, leases that clients hold could be lost; restore it, or remove the damaged line (the leases it records are then lost, their holders find them not held)"
	if err == nil || err.Error() != want {
		t.Fatalf("OpenFileLeases of a damaged log: %v\nwant %s", err, want)
	}
	d.ft.Close()
}

// TestLeaseNotDurable: while the lease log cannot be written, a lease is
// refused with an error that is table.ErrUnavailable, in its words; a
// renew is refused and leaves the lease as it was; a lease waiter stays
// queued, and is granted by itself when the log takes writes again. Plain
// locks are granted all along.
func TestLeaseNotDurable(t *testing.T) {
	d := openDurable(t, t.TempDir(), 0)
	defer d.close(t)
	a := d.lease(t, "x", "a", table.Request{})
	g := make(grants, 4)
	o := d.tb.NewOwner(table.Info{}, g)
	w, res, _ := d.tb.Acquire(o, table.Request{Name: "x", Wait: true, Lease: &table.LeaseRequest{Key: leaseKey("w"), TTL: time.Hour}})
	if res != table.Queued {
		t.Fatalf("lease waiter: %v", res)
	}

	d.fl.FailWrites(errors.New("write /state/leases: no space left on device"))
	const want = "lease state not durable: write /state/leases: no space left on device"
	_, res, err := d.tb.Acquire(o, table.Request{Name: "y", Lease: &table.LeaseRequest{Key: leaseKey("y"), TTL: time.Hour}})
	if res != table.Refused || !errors.Is(err, table.ErrUnavailable) || !errors.Is(err, lockd.ErrLeaseNotDurable) || err.Error() != want {
		t.Fatalf("lease on a failing log: %v, %v; want Refused, %q", res, err, want)
	}
	if _, err := d.tb.Renew(leaseKey("a"), 5*time.Hour); !errors.Is(err, table.ErrUnavailable) || err.Error() != want {
		t.Fatalf("renew on a failing log: %v, want %q", err, want)
	}
	if l, _ := d.tb.LookupLease(leaseKey("a")); !l.Expires.Equal(a.Expires) {
		t.Fatalf("a refused renew moved the Expires: %v, want %v", l.Expires, a.Expires)
	}
	if _, res, _ := d.tb.Acquire(o, table.Request{Name: "p"}); res != table.Granted {
		t.Fatalf("a plain lock on a failing log: %v", res)
	}
	if _, err := d.tb.ReleaseLease(leaseKey("a")); err != nil {
		t.Fatal(err) // a release is never refused
	}
	g.none(t)
	if d.tb.Held(w) {
		t.Fatal("the lease waiter was granted without being stored")
	}
	d.fl.FailWrites(nil)
	select {
	case h := <-g:
		if h != w {
			t.Fatalf("granted %s", h.Name())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lease waiter was not granted when the log recovered")
	}
	if _, err := d.tb.LookupLease(leaseKey("w")); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseCompaction: renewing one lease over and over does not grow the
// log past its bound (twice its live lines plus 64 KiB).
func TestLeaseCompaction(t *testing.T) {
	dir := t.TempDir()
	d := openDurable(t, dir, 0)
	defer d.close(t)
	d.lease(t, "x", "a", table.Request{})
	for range 1000 {
		if _, err := d.tb.Renew(leaseKey("a"), 0); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "leases"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 2*512+64<<10+512 {
		t.Fatalf("the log is %d bytes after 1000 renews of one lease", fi.Size())
	}
	if _, err := d.tb.LookupLease(leaseKey("a")); err != nil {
		t.Fatal(err)
	}
}
