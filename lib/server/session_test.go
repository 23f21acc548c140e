package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/server"
)

var sessionScripts = []struct {
	name  string
	steps []string
}{
	{"many locks, released one by one", []string{
		"0>.session,client-id:c\n", "0<session,dead-peer-timeout:30\n",
		"0>lock,name:a\n", "0<ok,name:a,token:1\n",
		"0>lock,name:b,wait:5\n", "0<ok,name:b,token:2\n",
		"0>lock,name:c,mode:shared\n", "0<ok,name:c,token:3\n",
		"1>lock,name:a\n", "1<not-granted\n", "1$",
		"0>release,name:a\n", "0<released,name:a\n",
		"2>lock,name:a\n", "2<ok\n", // free at once
		"0>release,name:a\n", "0<err,name:a,not held\n",
		"0>release,name:zz\n", "0<err,name:zz,not held\n",
		"3>lock,name:b\n", "3<not-granted\n", "3$",
		"0>release,name:b\n", "0<released,name:b\n",
		"0>release,name:c\n", "0<released,name:c\n",
		"0>.keepalive\n", "0<alive\n",
		"0>.ping\n", "0<pong\n",
		"0>.quit\n", "0<bye\n", "0$",
	}},
	{"a wait, cancelled", []string{
		"0>lock,name:w\n", "0<ok\n", // token 1
		"1>.session\n", "1<session,dead-peer-timeout:30\n",
		"1>lock,name:w,wait:inf\n", "1>.keepalive\n", "1<alive\n",
		"1>lock,name:w,wait:inf\n", "1<err,name:w,already held or awaited by this session\n",
		"1>release,name:w\n", "1<cancelled,name:w\n",
		"1>release,name:w\n", "1<err,name:w,not held\n",
		"0>release\n", "0<released\n", "0$",
		"2>lock,name:w\n", "2<ok\n", // the cancelled wait did not take it
		"1>.ping\n", "1<pong\n",
	}},
	{"a wait, granted, and one that times out", []string{
		"0>lock,name:w\n", "0<ok\n", // token 1
		"1>.session,client-id:s\n", "1<session,dead-peer-timeout:30\n",
		"1>lock,name:w,wait:0\n", "1<not-granted,name:w\n",
		"1>lock,name:w,wait:0.1\n", "1<timeout,name:w\n",
		"1>lock,name:w,wait:inf\n", "1>lock,name:v\n", "1<ok,name:v,token:2\n", // answers may overtake a wait
		"0>release\n", "0<released\n", "0$",
		"1<ok,name:w,token:3\n",
		"2>lock,name:w\n", "2<not-granted\n", "2$",
		"1>release,name:w\n", "1<released,name:w\n",
	}},
	{"other requests in a session", []string{
		"0>.session\n", "0<session,dead-peer-timeout:30\n",
		"0>.session\n", "0<err,already in a session\n",
		"0>frobnicate\n", "0<bad-action\n",
		"0>.server-shutdown\n", "0<bad-action\n",
		"0>\n", "0<bad-request\n",
		"0>lock,\n", "0<bad-request\n",
		"0>lock,name:.x\n", "0<err,invalid lock name\n",
		"0>lock,name:x,wait:-1\n", "0<err,name:x,invalid wait: want seconds >= 0 or inf\n",
		"0>release\n", "0<err,invalid lock name\n",
		"0>lock,name:x,limit:2\n", "0<ok,name:x,token:1\n",
		"1>lock,name:x,limit:3\n", "1<err,limit mismatch\n", "1$",
		"0>.keepalive\r\n", "0<alive\n",
		"0>.quit\n", "0<bye\n", "0$",
	}},
	{"several requests in one write", []string{
		"0>.session\nlock,name:a\nlock,name:b\n.ping\nrelease,name:a\n.keepalive\n",
		"0<session,dead-peer-timeout:30\n", "0<ok,name:a,token:1\n", "0<ok,name:b,token:2\n",
		"0<pong\n", "0<released,name:a\n", "0<alive\n",
		"0>.quit\n", "0<bye\n", "0$",
		// .quit answered: everything was released before the close
		"1>lock,name:b\n", "1<ok\n",
	}},
}

func TestSessionTranscripts(t *testing.T) {
	for _, tc := range sessionScripts {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, server.Config{})
			script(t, ts.addr, tc.steps...)
		})
	}
}

// TestSessionStatsAndHolders: .stats and .holders keep a session open.
func TestSessionStatsAndHolders(t *testing.T) {
	ts := start(t, server.Config{})
	s := dial(t, ts.addr)
	s.roundtrip(".session,client-id:me,pid:9,host:box\n", "session,dead-peer-timeout:30\n")
	s.roundtrip("lock,name:a\n", "ok,name:a,token:1\n")
	s.send(".stats\n")
	if line, err := s.line(); err != nil || !strings.HasPrefix(line, `stats,{"lock_count": 1, `) {
		t.Fatalf(".stats: got %q (err %v)", line, err)
	}
	s.send(".holders,name:a\n")
	line, err := s.line()
	if err != nil || !strings.HasPrefix(line, `holders,{"locks":[{"name":"a",`) || !strings.Contains(line, `"client_id":"me","host":"box","pid":9,`) {
		t.Fatalf(".holders: got %q (err %v)", line, err)
	}
	s.roundtrip(".ping\n", "pong\n")
	if st := ts.Stats(); st.Sessions != 1 || st.Connections != 1 {
		t.Errorf("stats %+v, want 1 session on 1 connection", st)
	}
}

// TestSessionCloseFreesAll: closing (or cutting) a session's connection
// releases every lock it holds and cancels its waits, at once.
func TestSessionCloseFreesAll(t *testing.T) {
	for _, how := range []string{"close", "reset", "half-close"} {
		t.Run(how, func(t *testing.T) {
			ts := start(t, server.Config{})
			other := hold(t, ts.addr, "busy")
			s := dial(t, ts.addr)
			s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
			for _, n := range []string{"a", "b", "c"} {
				s.send("lock,name:" + n + "\n")
			}
			s.expect("ok,name:a,token:2\n")
			s.expect("ok,name:b,token:3\n")
			s.expect("ok,name:c,token:4\n")
			s.roundtrip("lock,name:busy,wait:inf\n.keepalive\n", "alive\n")
			wa := queue(t, ts.addr, "a", "wait:5")
			wb := queue(t, ts.addr, "b", "wait:5")
			switch how {
			case "close":
				s.close()
			case "reset":
				s.reset()
			case "half-close":
				_ = s.nc.CloseWrite()
			}
			// ReleaseAll picks the order; both are granted, with new tokens.
			if ta, tb := wa.grant(), wb.grant(); min(ta, tb) != 5 || max(ta, tb) != 6 {
				t.Errorf("tokens %d and %d, want 5 and 6", ta, tb)
			}
			hold(t, ts.addr, "c")
			eventually(t, "the session's wait to leave the queue", func() bool {
				return len(waiterIDs(t, ts.addr, "busy")) == 0
			})
			other.roundtrip("release\n", "released\n")
			hold(t, ts.addr, "busy")
			eventually(t, "no sessions", func() bool { return ts.Stats().Sessions == 0 })
		})
	}
}

// TestSessionSilentPeerIsClosed: a session that sends nothing for
// DeadPeerTimeout is closed and its locks released; one that sends
// .keepalive in time stays.
func TestSessionSilentPeerIsClosed(t *testing.T) {
	const dpt = 300 * time.Millisecond
	ts := start(t, server.Config{DeadPeerTimeout: dpt})

	live := dial(t, ts.addr)
	live.roundtrip(".session\n", "session,dead-peer-timeout:0.3\n")
	live.roundtrip("lock,name:live\n", "ok,name:live,token:1\n")

	s := dial(t, ts.addr)
	s.roundtrip(".session,client-id:quiet\n", "session,dead-peer-timeout:0.3\n")
	s.roundtrip("lock,name:a\n", "ok,name:a,token:2\n")
	s.roundtrip("lock,name:b\n", "ok,name:b,token:3\n")
	w := queue(t, ts.addr, "a", "wait:inf")
	begin := time.Now()
	s.roundtrip(".keepalive\n", "alive\n") // the last sign of life

	// Meanwhile the live session beats every dpt/6 and is never closed.
	tick := time.NewTicker(dpt / 6)
	defer tick.Stop()
	for range 6 {
		<-tick.C
		live.roundtrip(".keepalive\n", "alive\n")
	}
	s.expectEOF()
	if d := time.Since(begin); d < dpt {
		t.Errorf("silent session closed after %v, want >= %v", d, dpt)
	}
	w.expect("ok,token:4\n")
	hold(t, ts.addr, "b")
	for range 6 {
		<-tick.C
		live.roundtrip(".keepalive\n", "alive\n")
	}
	live.roundtrip("release,name:live\n", "released,name:live\n")
	if !strings.Contains(ts.logs.String(), "session closed: peer silent") {
		t.Errorf("no log line for the closed session:\n%s", ts.logs)
	}
}

// TestSessionLargeAnswersInBatches: a batch of requests whose answers are
// large (.holders of many locks) is answered in several writes of at most
// about 64 KiB each, all of it, in order, without waiting for more input.
func TestSessionLargeAnswersInBatches(t *testing.T) {
	ts := start(t, server.Config{})
	h := dial(t, ts.addr)
	h.roundtrip(".session,client-id:holder\n", "session,dead-peer-timeout:30\n")
	var locks strings.Builder
	for i := range 200 {
		fmt.Fprintf(&locks, "lock,name:batch-%03d\n", i)
	}
	h.send(locks.String())
	for i := range 200 {
		h.expect(fmt.Sprintf("ok,name:batch-%03d,token:%d\n", i, i+1))
	}
	q := dial(t, ts.addr)
	q.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	const asks = 40
	q.send(strings.Repeat(".holders\n", asks) + ".ping\n")
	size := 0
	for i := range asks {
		line, err := q.line()
		if err != nil || !strings.HasPrefix(line, `holders,{"locks":[{"name":"batch-000",`) {
			t.Fatalf("answer %d: %.80q (err %v)", i+1, line, err)
		}
		size += len(line)
	}
	if size < 4*64<<10 {
		t.Fatalf("the answers total %d bytes: too few to need several batches", size)
	}
	q.expect("pong\n")
}

// TestSessionsCounted: the sessions counter of .stats goes back down
// however a session ends: .quit, a close by the peer, silence, a line too
// long. (It once went down only for a peer that closed while the session
// was open, so every .quit left a session counted for ever.)
func TestSessionsCounted(t *testing.T) {
	ts := start(t, server.Config{DeadPeerTimeout: time.Second, MaxLineLength: 64})
	quit := dial(t, ts.addr)
	quit.roundtrip(".session\n", "session,dead-peer-timeout:1\n")
	quit.roundtrip(".quit\n", "bye\n")
	quit.expectEOF()
	long := dial(t, ts.addr)
	long.roundtrip(".session\n", "session,dead-peer-timeout:1\n")
	long.send(strings.Repeat("x", 100) + "\n")
	long.expect("err,line too long\n")
	silent := dial(t, ts.addr)
	silent.roundtrip(".session\n", "session,dead-peer-timeout:1\n")
	closed := dial(t, ts.addr)
	closed.roundtrip(".session\n", "session,dead-peer-timeout:1\n")
	closed.close()
	eventually(t, "every session to end", func() bool { return ts.Stats().Connections == 0 })
	if n := ts.Stats().Sessions; n != 0 {
		t.Fatalf("%d sessions counted after all four ended, want 0", n)
	}
}
