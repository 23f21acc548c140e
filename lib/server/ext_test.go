package server_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
)

// Extension transcripts (CONTRACT §1.2). Each runs on a fresh server, whose
// fencing tokens start at 1 and are shared by all names.
var extScripts = []struct {
	name  string
	steps []string
}{
	{"wait granted when the holder releases", []string{
		"0>lock,name:x\n", "0<ok\n", // token 1, not shown to a legacy request
		"1>lock,name:x,wait:5\n.keepalive\n", "1<alive\n", // queued
		"0>release\n", "0<released\n", "0$",
		"1<ok,token:2\n",
		"1>.keepalive\n", "1<alive\n",
		"1>.ping\n", "1<bad-action\n", // held like a legacy lock from now on
		"2>lock,name:x\n", "2<not-granted\n", "2$",
		"1>release\n", "1<released\n", "1$",
	}},
	{"extension grant at once carries a token", []string{
		"0>lock,name:x,wait:5\n", "0<ok,token:1\n",
		"1>lock,name:y,wait:0\n", "1<ok,token:2\n",
		"2>lock,name:z,client-id:c,pid:42,host:h\n", "2<ok,token:3\n",
		"3>lock,name:w,mode:exclusive\n", "3<ok,token:4\n",
		"4>lock,name:v,limit:1\n", "4<ok,token:5\n",
		"5>lock,name:u,client-id:c\n", "5<ok\n", // legacy keys only: legacy answer
	}},
	{"wait:0 and a free name", []string{
		"0>lock,name:x\n", "0<ok\n",
		"1>lock,name:x,wait:0\n", "1<not-granted\n", "1$",
	}},
	{"wait ends in timeout, distinct from not-granted", []string{
		"0>lock,name:x\n", "0<ok\n",
		"1>lock,name:x,wait:0.2\n", "1<timeout\n", "1$",
		"2>lock,name:x,wait:200ms\n", "2<timeout\n", "2$",
		"0>.keepalive\n", "0<alive\n",
		"3>lock,name:x\n", "3<not-granted\n", "3$",
	}},
	{"bad extension values", []string{
		"0>lock,name:x,wait:-1\n", "0<err,invalid wait: want seconds >= 0 or inf\n", "0$",
		"1>lock,name:x,wait:soon\n", "1<err,invalid wait: want seconds, a duration like 5m, or inf\n", "1$",
		"2>lock,name:x,mode:sometimes\n", "2<err,invalid mode: want shared or exclusive\n", "2$",
		"3>lock,name:x,limit:0\n", "3<err,invalid limit: want a number from 1 to 1000000\n", "3$",
		"4>lock,name:x,pid:-3\n", "4<err,invalid pid: not a process id\n", "4$",
		"5>lock,name:.x,wait:5\n", "5<err,invalid lock name\n", "5$",
		"6>lock,name:x,mode:shared,limit:3\n", "6<err,invalid limit: a shared lock has no limit\n", "6$",
		"7>lock,name:x,wait:1,wait:inf\n", "7<ok,token:1\n", // the last key wins
	}},
	{"FIFO order of waiters", []string{
		"0>lock,name:x\n", "0<ok\n",
		"1>lock,name:x,wait:inf\n.keepalive\n", "1<alive\n",
		"2>lock,name:x,wait:inf\n.keepalive\n", "2<alive\n",
		"3>lock,name:x,wait:inf\n.keepalive\n", "3<alive\n",
		// a newcomer that would not wait is refused: the queue is not empty
		"4>lock,name:x,wait:0\n", "4<not-granted\n", "4$",
		"0>release\n", "0<released\n", "0$",
		"1<ok,token:2\n",
		"1>release\n", "1<released\n", "1$",
		"2<ok,token:3\n",
		"2>release\n", "2<released\n", "2$",
		"3<ok,token:4\n",
		"3>release\n", "3<released\n", "3$",
	}},
	{"shared and exclusive", []string{
		"0>lock,name:rw,mode:shared\n", "0<ok,token:1\n",
		"1>lock,name:rw,mode:shared\n", "1<ok,token:2\n",
		"2>lock,name:rw\n", "2<not-granted\n", "2$",
		"3>lock,name:rw,wait:0\n", "3<not-granted\n", "3$",
		"4>lock,name:rw,wait:inf\n.keepalive\n", "4<alive\n", // a writer waits
		// a reader behind a waiting writer waits too
		"5>lock,name:rw,mode:shared,wait:0\n", "5<not-granted\n", "5$",
		"6>lock,name:rw,mode:shared,wait:inf\n.keepalive\n", "6<alive\n",
		"7>lock,name:rw,mode:shared,wait:inf\n.keepalive\n", "7<alive\n",
		"0>release\n", "0<released\n", "0$",
		"1>release\n", "1<released\n", "1$",
		"4<ok,token:3\n",
		"8>lock,name:rw,mode:shared,wait:0\n", "8<not-granted\n", "8$",
		"4>release\n", "4<released\n", "4$",
		// both readers go together
		"6<ok,token:4\n", "7<ok,token:5\n",
		"9>lock,name:rw,mode:shared\n", "9<ok,token:6\n",
	}},
	{"semaphore", []string{
		"0>lock,name:sem,limit:3\n", "0<ok,token:1\n",
		"1>lock,name:sem,limit:3\n", "1<ok,token:2\n",
		"2>lock,name:sem,limit:3\n", "2<ok,token:3\n",
		"3>lock,name:sem,limit:3\n", "3<not-granted\n", "3$",
		"4>lock,name:sem,limit:2\n", "4<err,limit mismatch\n", "4$",
		"5>lock,name:sem,limit:4,wait:inf\n", "5<err,limit mismatch\n", "5$",
		"6>lock,name:sem,wait:5\n", "6<err,limit mismatch\n", "6$", // limit 1
		"7>lock,name:sem\n", "7<not-granted\n", "7$", // a legacy request gets a legacy answer
		"8>lock,name:sem,mode:shared\n", "8<not-granted\n", "8$", // modes never mix
		"9>lock,name:sem,limit:3,wait:inf\n.keepalive\n", "9<alive\n",
		"1>release\n", "1<released\n", "1$",
		"9<ok,token:4\n",
		"0x", "2x", "9x",
	}},
	{"fencing tokens strictly increase", []string{
		"0>lock,name:a,wait:0\n", "0<ok,token:1\n",
		"1>lock,name:b,wait:0\n", "1<ok,token:2\n",
		"0>release\n", "0<released\n", "0$",
		"2>lock,name:a,wait:0\n", "2<ok,token:3\n",
		"3>lock,name:a\n", "3<not-granted\n", "3$", // a refusal uses no token
		"4>lock,name:c\n", "4<ok\n", // a legacy grant uses one, unseen
		"2>release\n", "2<released\n", "2$",
		"5>lock,name:a,wait:0\n", "5<ok,token:5\n",
	}},
}

func TestExtensionTranscripts(t *testing.T) {
	for _, tc := range extScripts {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, server.Config{})
			script(t, ts.addr, tc.steps...)
		})
	}
}

// TestWaitTimeoutTakesItsTime: a wait:0.2 answers timeout no sooner than
// 200ms, and the holder keeps the lock.
func TestWaitTimeoutTakesItsTime(t *testing.T) {
	ts := start(t, server.Config{})
	h := hold(t, ts.addr, "x")
	w := dial(t, ts.addr)
	begin := time.Now()
	w.roundtrip("lock,name:x,wait:0.2\n", "timeout\n")
	if d := time.Since(begin); d < 200*time.Millisecond {
		t.Errorf("timeout after %v, want >= 200ms", d)
	}
	w.expectEOF()
	h.roundtrip(".keepalive\n", "alive\n")
	if c := ts.table.Counters(); c.Waiting != 0 || c.Held != 1 {
		t.Errorf("counters %+v, want 1 held, 0 waiting", c)
	}
}

// TestFencingTokensManyGrants: tokens of many grants on one name, legacy and
// extension mixed, strictly increase in grant order.
func TestFencingTokensManyGrants(t *testing.T) {
	ts := start(t, server.Config{})
	var last uint64
	for i := range 200 {
		c := dial(t, ts.addr)
		if i%3 == 0 {
			c.roundtrip("lock,name:f\n", "ok\n")
			c.roundtrip("release\n", "released\n")
			continue
		}
		c.send("lock,name:f,wait:1\n")
		n := c.grant()
		if n <= last {
			t.Fatalf("grant %d: token %d after %d", i, n, last)
		}
		last = n
		c.roundtrip("release\n", "released\n")
	}
}

// TestHolders decodes .holders into protocol.Holders and checks every field.
func TestHolders(t *testing.T) {
	ts := start(t, server.Config{})
	before := time.Now().UTC()
	h := dial(t, ts.addr)
	h.roundtrip("lock,name:h,client-id:alice,pid:42,host:hosta\n", "ok,token:1\n")
	granted := time.Now().UTC()
	w := queue(t, ts.addr, "h", "client-id:bob,pid:7,host:hostb,wait:inf")
	l := dial(t, ts.addr)
	l.roundtrip("lock,name:g,client-id:carol\n", "ok\n") // token 2
	s1 := dial(t, ts.addr)
	s1.roundtrip("lock,name:s,mode:shared\n", "ok,token:3\n")
	s2 := dial(t, ts.addr)
	s2.roundtrip("lock,name:s,mode:shared,client-id:dave\n", "ok,token:4\n")
	m := dial(t, ts.addr)
	m.roundtrip("lock,name:m,limit:5\n", "ok,token:5\n")
	after := time.Now().UTC()

	doc := holders(t, ts.addr, "h")
	if len(doc.Locks) != 1 || doc.Truncated {
		t.Fatalf("holders h: %+v, want one lock", doc)
	}
	lk := doc.Locks[0]
	if lk.Name != "h" || lk.Mode != "exclusive" || lk.Limit != 1 || lk.Token != 1 || len(lk.Holders) != 1 || len(lk.Waiters) != 1 {
		t.Fatalf("holders h: %+v", lk)
	}
	hp, wp := lk.Holders[0], lk.Waiters[0]
	if hp.ClientID != "alice" || hp.Host != "hosta" || hp.PID != 42 || hp.Addr != h.nc.LocalAddr().String() || hp.Mode != "exclusive" || hp.Token != 1 {
		t.Errorf("holder: %+v", hp)
	}
	if hp.Since.Before(before.Truncate(time.Microsecond)) || hp.Since.After(granted) {
		t.Errorf("holder since %v, want between %v and %v", hp.Since, before, granted)
	}
	if wp.ClientID != "bob" || wp.Host != "hostb" || wp.PID != 7 || wp.Addr != w.nc.LocalAddr().String() || wp.Mode != "exclusive" || wp.Token != 0 {
		t.Errorf("waiter: %+v", wp)
	}
	if wp.Since.Before(before.Truncate(time.Microsecond)) || wp.Since.After(after) {
		t.Errorf("waiter since %v, want between %v and %v", wp.Since, before, after)
	}

	all := holders(t, ts.addr, "")
	var names []string
	for _, lk := range all.Locks {
		names = append(names, lk.Name)
	}
	if !slices.Equal(names, []string{"g", "h", "m", "s"}) {
		t.Fatalf("holders: names %q, want g h m s, sorted", names)
	}
	g, mm, s := all.Locks[0], all.Locks[2], all.Locks[3]
	if len(g.Holders) != 1 || g.Holders[0].ClientID != "carol" || g.Token != 2 {
		t.Errorf("holders g: %+v", g)
	}
	if mm.Limit != 5 || mm.Mode != "exclusive" || len(mm.Holders) != 1 {
		t.Errorf("holders m: %+v", mm)
	}
	if s.Mode != "shared" || len(s.Holders) != 2 || s.Holders[0].Token != 3 || s.Holders[1].Token != 4 ||
		s.Holders[1].ClientID != "dave" || s.Holders[0].Mode != "shared" || s.Token != 4 {
		t.Errorf("holders s: %+v", s)
	}
	if doc := holders(t, ts.addr, "nobody"); len(doc.Locks) != 0 {
		t.Errorf("holders nobody: %+v, want no locks", doc)
	}
}

// TestHoldersMaxListed: MaxListed bounds the names and the parties per name.
func TestHoldersMaxListed(t *testing.T) {
	ts := start(t, server.Config{MaxListed: 2})
	for _, n := range []string{"a", "b", "c"} {
		hold(t, ts.addr, n)
	}
	for i := range 3 {
		c := dial(t, ts.addr)
		c.roundtrip("lock,name:s,mode:shared\n", "ok,token:"+strconv.Itoa(4+i)+"\n")
	}
	doc := holders(t, ts.addr, "")
	if !doc.Truncated || len(doc.Locks) != 2 || doc.Locks[0].Name != "a" || doc.Locks[1].Name != "b" {
		t.Errorf("holders: %+v, want a and b, truncated", doc)
	}
	if doc := holders(t, ts.addr, "s"); len(doc.Locks) != 1 || len(doc.Locks[0].Holders) != 2 {
		t.Errorf("holders s: %+v, want 2 of 3 holders", doc)
	}
}

// TestMaxWaiters: over the table's cap on waiters per name, one clear
// refusal; the queue and the holder are not touched.
func TestMaxWaiters(t *testing.T) {
	ts := start(t, server.Config{}, options{table: lockd.Options{MaxWaiters: 2}})
	script(t, ts.addr,
		"0>lock,name:x\n", "0<ok\n",
		"1>lock,name:x,wait:inf\n.keepalive\n", "1<alive\n",
		"2>lock,name:x,wait:inf\n.keepalive\n", "2<alive\n",
		"3>lock,name:x,wait:inf\n", "3<err,queue full\n", "3$",
		"4>lock,name:x\n", "4<not-granted\n", "4$",
		"5>.session\n", "5<session,dead-peer-timeout:30\n",
		"5>lock,name:x,wait:5\n", "5<err,name:x,queue full\n",
		"5>lock,name:y,wait:5\n", "5<ok,name:y,token:2\n",
		"0>release\n", "0<released\n", "0$",
		"1<ok,token:3\n",
		"6>lock,name:x,wait:inf\n.keepalive\n", "6<alive\n", // room again
	)
}
