package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var leaseGrant = regexp.MustCompile(`^ok,token:(\d+),lease:([0-9a-f]{32}),ttl:600\n$`)

// ask sends req on a new connection and returns the one answer before the
// server closes.
func ask(t *testing.T, addr, req string) string {
	t.Helper()
	c := dial(t, addr)
	_ = c.nc.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprint(c.nc, req)
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("%q: got %q (err %v)", req, line, err)
	}
	c.expectEOF()
	return line
}

// heldTTL checks that .is-held of id answers held,name:NAME,token:TOKEN and
// returns its ttl in seconds.
func heldTTL(t *testing.T, addr, id, name string, token uint64) float64 {
	t.Helper()
	got := ask(t, addr, ".is-held,lease:"+id+"\n")
	rest, ok := strings.CutPrefix(got, fmt.Sprintf("held,name:%s,token:%d,ttl:", name, token))
	ttl, err := strconv.ParseFloat(strings.TrimSuffix(rest, "\n"), 64)
	if !ok || err != nil || !strings.HasSuffix(rest, "\n") {
		t.Fatalf(".is-held: got %q, want held,name:%s,token:%d,ttl:S", got, name, token)
	}
	return ttl
}

// TestLeaseSurvivesKill9: with --state-dir a lease outlives kill -9 of its
// server, and SIGTERM: the restarted server holds it at once, with its token and no
// more time than it had, and the id renews and releases it; the restart
// grace still holds back new grants, whose tokens are larger. The id is in
// neither the log nor the state directory.
func TestLeaseSurvivesKill9(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	args := []string{"--listen", "127.0.0.1:0", "--state-dir", dir, "--dead-peer-timeout", "1s", "--log-level", "debug"}
	p := startServer(t, nil, args...)
	token(t, p.addr, "warm") // token 1
	got := ask(t, p.addr, "lock,name:nightly,ttl:600,client-id:cron\n")
	m := leaseGrant.FindStringSubmatch(got)
	if m == nil || m[1] != "2" {
		t.Fatalf("lease grant: got %q, want ok,token:2,lease:ID,ttl:600", got)
	}
	id := m[2]
	before := heldTTL(t, p.addr, id, "nightly", 2)
	firstLog := p.log()
	p.signal(t, syscall.SIGKILL)
	p.wait(t)

	p = startServer(t, nil, args...)
	start := time.Now()
	// Held at once, during the grace: nobody else may have it.
	after := heldTTL(t, p.addr, id, "nightly", 2)
	if after > before || after < before-60 {
		t.Errorf("ttl %v after the restart, %v before: want no more, and not much less", after, before)
	}
	if got := ask(t, p.addr, "lock,name:nightly\n"); got != "not-granted\n" {
		t.Errorf("lock of the lease's name after the restart: got %q", got)
	}
	// New grants wait for the grace, as ever.
	if got := ask(t, p.addr, "lock,name:other\n"); got != "not-granted\n" {
		t.Errorf("a new grant during the grace: got %q", got)
	}
	if got := ask(t, p.addr, ".renew,lease:"+id+"\n"); got != "renewed,name:nightly,token:2,ttl:600\n" {
		t.Errorf(".renew after the restart: got %q", got)
	}
	tok := tokenAfterGrace(t, p.addr, "other")
	if tok <= 2 {
		t.Errorf("a new grant's token %d, want above the lease's 2", tok)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("granted %v after the restart, within the grace", waited)
	}
	// SIGTERM closes every connection, which ends no lease.
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	p = startServer(t, nil, args...)
	heldTTL(t, p.addr, id, "nightly", 2)
	if got := ask(t, p.addr, ".release,lease:"+id+"\n"); got != "released,name:nightly\n" {
		t.Errorf(".release after the restart: got %q", got)
	}
	if tok := tokenAfterGrace(t, p.addr, "nightly"); tok <= 2 {
		t.Errorf("token %d after the release, want above 2", tok)
	}
	p.signal(t, syscall.SIGTERM)
	p.wait(t)
	for what, text := range map[string]string{"first log": firstLog, "second log": p.log(), "state": readDir(t, dir)} {
		if strings.Contains(text, id) {
			t.Errorf("the lease id is in the %s:\n%s", what, text)
		}
	}
	if !strings.Contains(p.log(), "msg=\"lease state\" dir="+dir+" leases=1") {
		t.Errorf("the log does not tell of the lease held again:\n%s", p.log())
	}
}

// TestLeaseWithoutStateDir: without --state-dir a lease ends with its
// server, and the log says so at start.
func TestLeaseWithoutStateDir(t *testing.T) {
	p := startServer(t, nil, "--listen", "127.0.0.1:0")
	m := leaseGrant.FindStringSubmatch(ask(t, p.addr, "lock,name:l,ttl:600\n"))
	if m == nil {
		t.Fatal("no lease")
	}
	p.signal(t, syscall.SIGKILL)
	p.wait(t)
	p = startServer(t, nil, "--listen", "127.0.0.1:0")
	if got := ask(t, p.addr, ".is-held,lease:"+m[2]+"\n"); got != "err,no such lease\n" {
		t.Errorf(".is-held after a restart without --state-dir: got %q", got)
	}
	if !strings.Contains(p.log(), "leases end with the server") {
		t.Errorf("the log does not say leases are in memory:\n%s", p.log())
	}
}

// TestMaxHoldFlag: --max-hold takes a legacy holder's lock away at the cap
// (its connection closed), grants the next waiter, and logs it.
func TestMaxHoldFlag(t *testing.T) {
	p := startServer(t, nil, "--listen", "127.0.0.1:0", "--max-hold", "300ms")
	h := dial(t, p.addr)
	h.roundtrip("lock,name:m,client-id:stuck\n", "ok\n")
	w := dial(t, p.addr)
	w.roundtrip("lock,name:m,wait:inf\n.keepalive\n", "alive\n")
	h.expectEOF()
	w.expect("ok,token:2\n")
	logged := regexp.MustCompile(`level=INFO msg="lock taken away: maximum hold reached" name=m remote=\S+ client_id=stuck max_hold=300ms held_for=\S+`)
	for deadline := time.Now().Add(ioTimeout); !logged.MatchString(p.log()) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !logged.MatchString(p.log()) {
		t.Errorf("no log line for the maximum hold:\n%s", p.log())
	}
	if !strings.Contains(p.log(), "max_hold=300ms\n") {
		t.Errorf("the listening line does not say the maximum hold:\n%s", p.log())
	}
}

// readDir returns the contents of the files in dir.
func readDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// tokenAfterGrace is token with a wait well past a restart grace of 1s.
func tokenAfterGrace(t *testing.T, addr, name string) uint64 {
	t.Helper()
	return tokenWaiting(t, addr, name, "8")
}
