package acquire

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
)

// lines collects what Do writes on its standard error.
type lines struct{ strings.Builder }

// TestRetryCountsTries: --retry N asks exactly N+1 times, --retry-wait
// apart, then gives up with the conflict status; with no retry a refusal
// returns at once, whatever --retry-wait says. The tries are counted by the
// server (its not-granted counter, raised before it answers) and by the
// verbose lines. The context's deadline is a bound, not a synchronisation:
// one try too many with a --retry-wait of 30s ends there, in 5s, instead
// of passing after 30.
func TestRetryCountsTries(t *testing.T) {
	srv := server.New(lockd.New(lockd.Options{}), server.Config{Logger: slog.New(slog.DiscardHandler)})
	l, err := server.Listen(context.Background(), "127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	addr := l.Addr().String()
	holder, err := client.Dial(context.Background(), client.Options{Addr: addr, ClientID: "holder"})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.Lock(context.Background(), "busy", client.LockOptions{}); err != nil {
		t.Fatal(err)
	}

	const bound = 5 * time.Second
	for _, tc := range []struct {
		name  string
		retry int
		wait  time.Duration
		lock  client.LockOptions
		want  []string // the verbose lines after "connected to"
	}{
		{"no retry, long retry wait", 0, 30 * time.Second, client.LockOptions{}, nil},
		{"one retry", 1, 10 * time.Millisecond, client.LockOptions{}, []string{
			"tnl-test: busy not granted; try 2 of 2 in 10ms",
		}},
		{"three retries", 3, 10 * time.Millisecond, client.LockOptions{}, []string{
			"tnl-test: busy not granted; try 2 of 4 in 10ms",
			"tnl-test: busy not granted; try 3 of 4 in 10ms",
			"tnl-test: busy not granted; try 4 of 4 in 10ms",
		}},
		// A wait that runs out counts as a try too.
		{"waits, two retries", 2, 10 * time.Millisecond, client.LockOptions{Wait: 20 * time.Millisecond}, []string{
			"tnl-test: busy not granted; try 2 of 3 in 10ms",
			"tnl-test: busy not granted; try 3 of 3 in 10ms",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr lines
			before := srv.Table().Counters().NotAcquired
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			r := &Request{Prog: "tnl-test", Name: "busy", Dial: client.Options{Addr: addr, ClientID: "retrier"},
				Lock: tc.lock, Conflict: 123, Retry: tc.retry, RetryWait: tc.wait, Verbose: true, Stderr: &stderr}
			start := time.Now()
			c, lease, err := r.Do(ctx)
			took := time.Since(start)
			if c != nil || lease != nil {
				t.Fatalf("Do returned a client and a lease for a lock held by another")
			}
			if code := exitcode.Of(err); code != 123 || ctx.Err() != nil {
				t.Fatalf("Do: %v (exit %d) after %v; want exit 123 well before %v", err, code, took, bound)
			}
			if tries := srv.Table().Counters().NotAcquired - before; tries != uint64(tc.retry+1) {
				t.Errorf("the server was asked %d times, want %d (--retry %d)", tries, tc.retry+1, tc.retry)
			}
			want := append([]string{"tnl-test: connected to " + addr}, tc.want...)
			if got := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("verbose lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
