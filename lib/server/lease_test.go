package server_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/server"
)

// leaseGrant matches a lease grant: ok[,name:N],token:T,lease:ID,ttl:S.
var leaseGrant = regexp.MustCompile(`^ok,(name:[^,]+,)?token:(\d+),lease:([0-9a-f]{32}),ttl:([0-9.]+)\n$`)

// leaseID reads a lease grant that must be exactly want with its id put in
// place of ID, and returns the id.
func (c *peer) leaseID(want string) string {
	c.t.Helper()
	got, err := c.line()
	m := leaseGrant.FindStringSubmatch(got)
	if err != nil || m == nil || strings.Replace(want, "ID", m[3], 1) != got {
		c.t.Fatalf("%s: got %q (err %v), want %q", c.name, got, err, want)
	}
	return m[3]
}

// ask sends one request on a fresh connection and returns its one answer,
// after which the server must close.
func ask(t *testing.T, addr, req string) string {
	t.Helper()
	c := dial(t, addr)
	defer c.close()
	c.send(req)
	got, err := c.line()
	if err != nil {
		t.Fatalf("%q: got %q (err %v)", req, got, err)
	}
	c.expectEOF()
	return got
}

// isHeldTTL asks .is-held for id, checks the answer's words, and returns
// its ttl.
func isHeldTTL(t *testing.T, addr, id, prefix string) time.Duration {
	t.Helper()
	got := ask(t, addr, ".is-held,lease:"+id+"\n")
	rest, ok := strings.CutPrefix(got, prefix+",ttl:")
	d, err := protocol.ParseDuration(strings.TrimSuffix(rest, "\n"))
	if !ok || !strings.HasSuffix(rest, "\n") || err != nil {
		t.Fatalf(".is-held: got %q, want %s,ttl:S", got, prefix)
	}
	return d
}

// otherID is a well-formed lease id that the server never made.
const otherID = "0123456789abcdef0123456789abcdef"

// TestLeasePlain: a lease taken on a plain connection, answered and closed,
// is held after its connection closed, and renewed, checked and released
// by id from other connections; a wrong or ended id is no such lease.
func TestLeasePlain(t *testing.T) {
	ts := start(t, server.Config{})
	c := dial(t, ts.addr)
	c.send("lock,name:l,ttl:60,client-id:cron\n")
	id := c.leaseID("ok,token:1,lease:ID,ttl:60\n")
	c.expectEOF()
	c.close()
	refused(t, ts.addr, "l")
	if ttl := isHeldTTL(t, ts.addr, id, "held,name:l,token:1"); ttl > 60*time.Second || ttl < 50*time.Second {
		t.Errorf(".is-held: ttl %v, want at most 60s", ttl)
	}
	for _, tc := range []struct{ req, want string }{
		{".renew,lease:" + id + "\n", "renewed,name:l,token:1,ttl:60\n"},
		{".renew,lease:" + id + ",ttl:2h\n", "renewed,name:l,token:1,ttl:7200\n"},
		{".renew,lease:" + id + ",ttl:1.5\n", "renewed,name:l,token:1,ttl:1.5\n"},
		{".renew,lease:" + id + ",ttl:60\n", "renewed,name:l,token:1,ttl:60\n"},
		{".renew,lease:" + otherID + "\n", "err,no such lease\n"},
		{".is-held,lease:" + otherID + "\n", "err,no such lease\n"},
		{".release,lease:" + otherID + "\n", "err,no such lease\n"},
		{".renew,lease:" + strings.ToUpper(id) + "\n", "err,invalid lease: want 32 lowercase hex digits\n"},
		{".is-held,lease:not-an-id\n", "err,invalid lease: want 32 lowercase hex digits\n"},
		{".is-held\n", "err,invalid lease: want 32 lowercase hex digits\n"},
		{".release\n", "err,invalid lease: want 32 lowercase hex digits\n"},
		{".renew,lease:" + id + ",ttl:inf\n", "err,invalid ttl: must be finite (at most 366 days)\n"},
		{"lock,name:l,ttl:0\n", "err,invalid ttl: too small (at least 1ms)\n"},
		{"lock,name:l,ttl:60\n", "not-granted\n"},
	} {
		if got := ask(t, ts.addr, tc.req); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.req, got, tc.want)
		}
	}
	refused(t, ts.addr, "l") // none of that ended it
	if got := ask(t, ts.addr, ".release,lease:"+id+"\n"); got != "released,name:l\n" {
		t.Fatalf(".release: got %q", got)
	}
	for _, req := range []string{".release,lease:", ".renew,lease:", ".is-held,lease:"} {
		if got := ask(t, ts.addr, req+id+"\n"); got != "err,no such lease\n" {
			t.Errorf("%s after the release: got %q", req, got)
		}
	}
	hold(t, ts.addr, "l")
}

// TestLeaseErrIDMatchesParser: the answer to a lease action without a
// lease is the parser's own words for a bad one.
func TestLeaseErrIDMatchesParser(t *testing.T) {
	_, err := protocol.ParseRequest([]byte(".renew,lease:x"))
	ts := start(t, server.Config{})
	if got, want := ask(t, ts.addr, ".renew\n"), "err,"+err.Error()+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestLeaseAfterWait: a lease request queued behind a connection-bound
// holder is granted, with its id, when the holder lets go, on a plain
// connection (then closed) and in a session (which goes on).
func TestLeaseAfterWait(t *testing.T) {
	ts := start(t, server.Config{})
	h := hold(t, ts.addr, "q")
	w := queue(t, ts.addr, "q", "ttl:30,wait:inf,client-id:w")
	s := dial(t, ts.addr)
	s.roundtrip(".session,client-id:s\n", "session,dead-peer-timeout:30\n")
	s.roundtrip("lock,name:q,ttl:2m,wait:inf\n.keepalive\n", "alive\n")
	if ids := waiterIDs(t, ts.addr, "q"); len(ids) != 2 || ids[0] != "w" || ids[1] != "s" {
		t.Fatalf("waiters %q, want [w s]", ids)
	}
	h.roundtrip("release\n", "released\n")
	id1 := w.leaseID("ok,token:2,lease:ID,ttl:30\n")
	w.expectEOF()
	if got := ask(t, ts.addr, ".release,lease:"+id1+"\n"); got != "released,name:q\n" {
		t.Fatalf(".release: got %q", got)
	}
	id2 := s.leaseID("ok,name:q,token:3,lease:ID,ttl:120\n")
	s.roundtrip(".renew,lease:"+id2+",ttl:10\n", "renewed,name:q,token:3,ttl:10\n")
	s.roundtrip(".release,lease:"+id2+"\n", "released,name:q\n")
	s.roundtrip(".is-held,lease:"+id2+"\n", "err,no such lease\n")
	s.roundtrip(".keepalive\n", "alive\n")
	if id1 == id2 {
		t.Errorf("two leases with one id %s", id1)
	}
}

// TestLeaseExpiryGrantsWaiter: a connection-bound waiter queued behind a
// lease is granted when the lease's TTL runs out, and the lease is gone.
func TestLeaseExpiryGrantsWaiter(t *testing.T) {
	ts := start(t, server.Config{})
	c := dial(t, ts.addr)
	c.send("lock,name:e,ttl:0.2\n")
	id := c.leaseID("ok,token:1,lease:ID,ttl:0.2\n")
	w := queue(t, ts.addr, "e", "wait:inf")
	s := dial(t, ts.addr)
	s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	s.roundtrip("lock,name:e,wait:inf\n.keepalive\n", "alive\n")
	if got := w.grant(); got != 2 { // read with a deadline: the TTL ends well before
		t.Fatalf("token %d, want 2", got)
	}
	if got := ask(t, ts.addr, ".is-held,lease:"+id+"\n"); got != "err,no such lease\n" {
		t.Errorf(".is-held after the expiry: got %q", got)
	}
	w.roundtrip("release\n", "released\n")
	s.expect("ok,name:e,token:3\n")
	if st := ts.Stats(); st.Expired != 1 || st.Leases != 0 {
		t.Errorf("stats %+v, want 1 expired, no lease", st)
	}
}

// TestLeaseOutlivesSession: a session's lease is not the session's: it is
// held after .quit and after a cut connection, and its waits are.
func TestLeaseOutlivesSession(t *testing.T) {
	ts := start(t, server.Config{})
	s := dial(t, ts.addr)
	s.roundtrip(".session,client-id:s\n", "session,dead-peer-timeout:30\n")
	s.send("lock,name:a,ttl:60\n")
	ida := s.leaseID("ok,name:a,token:1,lease:ID,ttl:60\n")
	s.roundtrip("lock,name:b\n", "ok,name:b,token:2\n")
	s.roundtrip("release,name:a\n", "err,name:a,not held\n") // a lease goes by its id
	s.roundtrip(".quit\n", "bye\n")
	s.expectEOF()
	refused(t, ts.addr, "a")
	hold(t, ts.addr, "b") // the session's own lock went with it
	isHeldTTL(t, ts.addr, ida, "held,name:a,token:1")

	s = dial(t, ts.addr)
	s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	s.send("lock,name:c,ttl:60\n")
	idc := s.leaseID("ok,name:c,token:4,lease:ID,ttl:60\n")
	s.reset()
	isHeldTTL(t, ts.addr, idc, "held,name:c,token:4")
	if st := ts.Stats(); st.Leases != 2 {
		t.Errorf("%d leases, want 2", st.Leases)
	}
}

// TestLeaseWaiterLeaves: a lease request that waits is bound to its
// connection as any wait: closed, it leaves the queue, and nothing is
// granted for it.
func TestLeaseWaiterLeaves(t *testing.T) {
	for _, how := range []string{"plain", "session"} {
		t.Run(how, func(t *testing.T) {
			ts := start(t, server.Config{})
			h := hold(t, ts.addr, "x")
			var w *peer
			if how == "plain" {
				w = queue(t, ts.addr, "x", "ttl:60,wait:inf,client-id:w")
			} else {
				w = dial(t, ts.addr)
				w.roundtrip(".session,client-id:w\n", "session,dead-peer-timeout:30\n")
				w.roundtrip("lock,name:x,ttl:60,wait:inf\n.keepalive\n", "alive\n")
			}
			if ids := waiterIDs(t, ts.addr, "x"); len(ids) != 1 || ids[0] != "w" {
				t.Fatalf("waiters %q, want [w]", ids)
			}
			w.close()
			eventually(t, "the waiter to leave", func() bool { return len(waiterIDs(t, ts.addr, "x")) == 0 })
			h.roundtrip("release\n", "released\n")
			hold(t, ts.addr, "x")
			if st := ts.Stats(); st.Leases != 0 {
				t.Errorf("%d leases, want none", st.Leases)
			}
		})
	}
}

// TestLeaseWaitTimesOut: a lease request's wait runs out as any other.
func TestLeaseWaitTimesOut(t *testing.T) {
	ts := start(t, server.Config{})
	hold(t, ts.addr, "x")
	script(t, ts.addr,
		"0>lock,name:x,ttl:60,wait:0.05\n", "0<timeout\n", "0$",
		"1>.session\n", "1<session,dead-peer-timeout:30\n",
		"1>lock,name:x,ttl:60,wait:0.05\n", "1<timeout,name:x\n",
		"1>lock,name:x,ttl:60\n", "1<not-granted,name:x\n",
	)
	if st := ts.Stats(); st.Leases != 0 || st.Waiting != 0 {
		t.Errorf("stats %+v, want no lease, no waiter", st)
	}
}

// TestLeaseAuth: lease requests and actions need the secret like any other.
func TestLeaseAuth(t *testing.T) {
	ts := start(t, server.Config{AuthToken: "s3cret"})
	c := dial(t, ts.addr)
	c.send("lock,name:l,ttl:60,auth:s3cret\n")
	id := c.leaseID("ok,token:1,lease:ID,ttl:60\n")
	for _, tc := range []struct{ req, want string }{
		{"lock,name:m,ttl:60\n", "err,authentication required\n"},
		{".renew,lease:" + id + "\n", "err,authentication required\n"},
		{".is-held,lease:" + id + ",auth:wrong\n", "err,authentication failed\n"},
		{".release,lease:" + id + "\n", "err,authentication required\n"},
		{".renew,lease:" + id + ",auth:s3cret\n", "renewed,name:l,token:1,ttl:60\n"},
		{".release,lease:" + id + ",auth:s3cret\n", "released,name:l\n"},
	} {
		if got := ask(t, ts.addr, tc.req); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.req, got, tc.want)
		}
	}
}

// TestLeaseIDNowhere: .holders shows a lease by its fingerprint, with its
// expiry and no address; neither .holders, .stats nor the log (at debug
// level) ever has the id.
func TestLeaseIDNowhere(t *testing.T) {
	logs := &syncBuffer{}
	ts := start(t, server.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	h := hold(t, ts.addr, "n")
	w := queue(t, ts.addr, "n", "ttl:60,wait:inf,client-id:cron,host:etl,pid:7")
	before := time.Now()
	h.roundtrip("release\n", "released\n")
	id := w.leaseID("ok,token:2,lease:ID,ttl:60\n")
	after := time.Now()
	key := protocol.LeaseKey(id)
	fp := hex.EncodeToString(key[:4])
	if got := protocol.LeaseFingerprint(key); got != fp {
		t.Fatalf("fingerprint %q, want %q", got, fp)
	}
	s := dial(t, ts.addr)
	s.roundtrip(".session,client-id:s\n", "session,dead-peer-timeout:30\n")
	s.roundtrip("lock,name:c,max-hold:3600\n", "ok,name:c,token:3\n")
	s.roundtrip(".renew,lease:"+id+"\n", "renewed,name:n,token:2,ttl:60\n")
	s.roundtrip(".release,lease:"+otherID+"\n", "err,no such lease\n")

	line := holdersLine(t, ts.addr, "")
	doc := holders(t, ts.addr, "")
	if len(doc.Locks) != 2 || len(doc.Locks[1].Holders) != 1 || len(doc.Locks[0].Holders) != 1 {
		t.Fatalf("holders %s", line)
	}
	p := doc.Locks[1].Holders[0]
	if p.Lease != fp || p.Addr != "" || p.ClientID != "cron" || p.Host != "etl" || p.PID != 7 || p.Token != 2 || p.Expires == nil ||
		p.Expires.Before(before.Add(60*time.Second)) || p.Expires.After(time.Now().Add(60*time.Second)) {
		t.Errorf("the lease's party %+v (expires %v), want lease %s, no addr, expiring in 60s", p, p.Expires, fp)
	}
	if !strings.Contains(line, `"lease":"`+fp+`"`) {
		t.Errorf("holders %s: no \"lease\":%q", line, fp)
	}
	c := doc.Locks[0].Holders[0]
	if c.Lease != "" || c.Addr == "" || c.Expires == nil || c.Expires.Before(after.Add(time.Hour-time.Second)) || c.Expires.After(time.Now().Add(time.Hour)) {
		t.Errorf("the capped holder %+v (expires %v), want an addr, expiring in 1h", c, c.Expires)
	}
	stats := ask(t, ts.addr, ".stats\n")
	for what, text := range map[string]string{"holders": line, "stats": stats, "log": logs.String()} {
		if strings.Contains(text, id) {
			t.Errorf("the lease id is in the %s:\n%s", what, text)
		}
	}
	if !strings.Contains(logs.String(), "lease="+fp) {
		t.Errorf("the log does not name the lease by its fingerprint %s:\n%s", fp, logs.String())
	}
	if !strings.Contains(stats, `"leases": 1, "lease_expired_count": 0, "max_hold_count": 0, `) {
		t.Errorf(".stats %q: want the lease counters", stats)
	}
}

// TestLeaseRenewFlood: a flood of .renew, .is-held and .release with random
// ids, on one session, answers each with no such lease, leaves the server
// holding nothing more than before, and does not touch the lease that is
// held.
func TestLeaseRenewFlood(t *testing.T) {
	ts := start(t, server.Config{})
	c := dial(t, ts.addr)
	c.send("lock,name:f,ttl:60\n")
	id := c.leaseID("ok,token:1,lease:ID,ttl:60\n")
	s := dial(t, ts.addr)
	s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	const rounds, batch = 50, 400
	var heap [2]uint64
	var b strings.Builder
	for r := range rounds {
		if r == 1 || r == rounds-1 {
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap[min(r-1, 1)] = ms.HeapAlloc
		}
		b.Reset()
		for i := range batch {
			fmt.Fprintf(&b, "%s,lease:%016x%016x\n", [...]string{".renew", ".is-held", ".release"}[i%3], rand.Uint64(), rand.Uint64())
		}
		s.send(b.String())
		for range batch {
			s.expect("err,no such lease\n")
		}
	}
	if grew := int64(heap[1]) - int64(heap[0]); grew > 1<<20 {
		t.Errorf("the heap grew by %d bytes over %d lease actions with random ids", grew, (rounds-2)*batch)
	}
	st := ts.Stats()
	if st.Leases != 1 || st.Names != 1 || st.Held != 1 {
		t.Errorf("stats %+v, want the one lease", st)
	}
	if ttl := isHeldTTL(t, ts.addr, id, "held,name:f,token:1"); ttl < 50*time.Second {
		t.Errorf("the lease has %v left", ttl)
	}
	t.Logf("heap %d -> %d bytes over %d requests", heap[0], heap[1], (rounds-2)*batch)
}

// TestMaxHoldSession: a session's lock taken away at its maximum hold is
// told with a lost line that says why; the next waiter is granted; the
// session goes on.
func TestMaxHoldSession(t *testing.T) {
	for _, tc := range []struct {
		name, keys string
		server     time.Duration
		why        string
	}{
		{"asked", ",max-hold:0.2", 0, "maximum hold of 200ms reached"},
		{"asked, server's larger", ",max-hold:0.2", time.Hour, "maximum hold of 200ms reached"},
		{"server's", "", 200 * time.Millisecond, "maximum hold of 200ms reached"},
		{"server's smaller", ",max-hold:3600", 200 * time.Millisecond, "maximum hold of 200ms reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, server.Config{MaxHold: tc.server})
			s := dial(t, ts.addr)
			s.roundtrip(".session,client-id:s\n", "session,dead-peer-timeout:30\n")
			s.roundtrip("lock,name:m"+tc.keys+"\n", "ok,name:m,token:1\n")
			w := queue(t, ts.addr, "m", "wait:inf")
			s.expect("lost,name:m,why:" + tc.why + "\n") // read with a deadline
			if got := w.grant(); got != 2 {
				t.Errorf("the waiter's token %d, want 2", got)
			}
			s.roundtrip("release,name:m\n", "err,name:m,not held\n")
			s.send(".stats\n")
			if got, err := s.line(); err != nil || !strings.Contains(got, `, "leases": 0, "lease_expired_count": 0, "max_hold_count": 1, "degraded": 0}`) {
				t.Errorf(".stats: got %q (err %v), want max_hold_count 1", got, err)
			}
			s.roundtrip(".keepalive\n", "alive\n")
			if st := ts.Stats(); st.MaxHolds != 1 {
				t.Errorf("%d taken away at their maximum hold, want 1", st.MaxHolds)
			}
			logged := func() bool {
				return strings.Contains(ts.logs.String(), `level=INFO msg="lock taken away: maximum hold reached" name=m `) &&
					strings.Contains(ts.logs.String(), "client_id=s max_hold=200ms held_for=")
			}
			eventually(t, "the log line", logged)
		})
	}
}

// TestMaxHoldConnection: a plain extension holder and a legacy one (under
// the server's --max-hold) are taken away at the cap by closing their
// connection, parked or not, and the next waiter is granted.
func TestMaxHoldConnection(t *testing.T) {
	for _, tc := range []struct {
		name, req, answer string
		server            time.Duration
		noPark            bool
	}{
		{"plain", "lock,name:m,max-hold:0.2\n", "ok,token:1\n", 0, false},
		{"plain, not parked", "lock,name:m,max-hold:0.2\n", "ok,token:1\n", 0, true},
		{"legacy", "lock,name:m\n", "ok\n", 200 * time.Millisecond, false},
		{"legacy, not parked", "lock,name:m\n", "ok\n", 200 * time.Millisecond, true},
		{"legacy, request's smaller", "lock,name:m,max-hold:0.2\n", "ok,token:1\n", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, server.Config{MaxHold: tc.server}, options{noPark: tc.noPark})
			h := dial(t, ts.addr)
			h.roundtrip(tc.req, tc.answer)
			w := queue(t, ts.addr, "m", "wait:inf")
			h.roundtrip(".keepalive\n", "alive\n")
			h.expectEOF() // read with a deadline
			if got := w.grant(); got != 2 {
				t.Errorf("the waiter's token %d, want 2", got)
			}
			eventually(t, "the log line", func() bool {
				return strings.Contains(ts.logs.String(), `msg="lock taken away: maximum hold reached" name=m `)
			})
			if st := ts.Stats(); st.MaxHolds != 1 {
				t.Errorf("%d taken away at their maximum hold, want 1", st.MaxHolds)
			}
		})
	}
}

// TestMaxHoldReleasedFirst: a holder that lets go before its cap is never
// taken away (nor told so), and a new grant of the same name gets a cap of
// its own.
func TestMaxHoldReleasedFirst(t *testing.T) {
	ts := start(t, server.Config{MaxHold: 100 * time.Millisecond})
	h := dial(t, ts.addr)
	h.roundtrip("lock,name:r\n", "ok\n")
	h.roundtrip("release\n", "released\n")
	h.expectEOF()
	s := dial(t, ts.addr)
	s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	s.roundtrip("lock,name:r\n", "ok,name:r,token:2\n")
	s.roundtrip("release,name:r\n", "released,name:r\n")
	s.roundtrip("lock,name:r,max-hold:0.15\n", "ok,name:r,token:3\n")
	s.expect("lost,name:r,why:maximum hold of 100ms reached\n")
	s.roundtrip("lock,name:r\n", "ok,name:r,token:4\n") // a new grant, a new cap
	s.expect("lost,name:r,why:maximum hold of 100ms reached\n")
	s.roundtrip(".keepalive\n", "alive\n")
	if st := ts.Stats(); st.MaxHolds != 2 {
		t.Errorf("%d taken away at their maximum hold, want 2", st.MaxHolds)
	}
}

// TestMaxHoldLease: a lease's maximum hold bounds its TTL and its renewals.
func TestMaxHoldLease(t *testing.T) {
	ts := start(t, server.Config{})
	c := dial(t, ts.addr)
	c.send("lock,name:x,ttl:60,max-hold:30\n")
	id := c.leaseID("ok,token:1,lease:ID,ttl:30\n")
	got := ask(t, ts.addr, ".renew,lease:"+id+",ttl:120\n")
	rest, ok := strings.CutPrefix(got, "renewed,name:x,token:1,ttl:")
	secs, err := strconv.ParseFloat(strings.TrimSuffix(rest, "\n"), 64)
	if !ok || err != nil || secs > 30 || secs < 20 {
		t.Errorf(".renew past the cap: got %q, want at most 30s", got)
	}
	doc := holders(t, ts.addr, "x")
	b, _ := json.Marshal(doc)
	if p := doc.Locks[0].Holders[0]; p.Expires == nil || time.Until(*p.Expires) > 30*time.Second {
		t.Errorf("holders %s: want an expiry within 30s", b)
	}
	// A server's cap applies to leases too.
	ts = start(t, server.Config{MaxHold: 10 * time.Second})
	c = dial(t, ts.addr)
	c.send("lock,name:x,ttl:60\n")
	c.leaseID("ok,token:1,lease:ID,ttl:10\n")
}
