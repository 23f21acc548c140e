package protocol

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode"
)

// appendReqCases are the lines clients send, byte for byte: tcpnetlock's
// legacy forms, and every line lib/client writes.
var appendReqCases = []struct {
	req  Request
	want string
}{
	// Legacy, as tcpnetlock's LockClient and tnl_client send them.
	{Request{Action: ActLock, Name: "x", HasName: true}, "lock,name:x\n"},
	{Request{Action: ActLock, Name: "x", HasName: true, ClientID: "me@host"}, "lock,name:x,client-id:me@host\n"},
	{Request{Action: ActLock, Name: "x"}, "lock,name:x\n"}, // a name without HasName is still sent
	{Request{Action: ActRelease}, "release\n"},
	{Request{Action: ActKeepalive}, ".keepalive\n"},
	{Request{Action: ActPing}, ".ping\n"},
	{Request{Action: ActStats}, ".stats\n"},
	{Request{Action: ActShutdown}, ".server-shutdown\n"},

	// Extension locks on a fresh connection.
	{Request{Action: ActLock, Name: "x", Wait: 2500 * time.Millisecond}, "lock,name:x,wait:2.5\n"},
	{Request{Action: ActLock, Name: "x", Wait: WaitForever}, "lock,name:x,wait:inf\n"},
	{Request{Action: ActLock, Name: "x", Wait: time.Second + 7}, "lock,name:x,wait:1.000000007\n"},
	{Request{Action: ActLock, Name: "x", Mode: Shared}, "lock,name:x,mode:shared\n"},
	{Request{Action: ActLock, Name: "x", Limit: 3}, "lock,name:x,limit:3\n"},
	{Request{Action: ActLock, Name: "x", Ext: true}, "lock,name:x,mode:exclusive\n"},
	{Request{Action: ActLock, Name: "x", Ext: true, PID: 7}, "lock,name:x,pid:7\n"},
	{Request{Action: ActLock, Name: "x", Ext: true, Limit: 1}, "lock,name:x,limit:1\n"},
	{Request{Action: ActLock, Name: "b/c:d", ClientID: "ci", Host: "h1", PID: 42, Wait: 5 * time.Minute, Mode: Shared, Limit: 2, Auth: "s3cret"},
		"lock,name:b/c:d,client-id:ci,host:h1,pid:42,wait:300,mode:shared,limit:2,auth:s3cret\n"},

	// What lib/client sends.
	{Request{Action: ActSession, ClientID: "alice@build1", Host: "build1", PID: 4242},
		".session,client-id:alice@build1,host:build1,pid:4242\n"},
	{Request{Action: ActSession, ClientID: "alice@build1", Host: "build1", PID: 4242, Auth: "tok"},
		".session,client-id:alice@build1,host:build1,pid:4242,auth:tok\n"},
	{Request{Action: ActLock, Name: "job", HasName: true}, "lock,name:job\n"},
	{Request{Action: ActLock, Name: "job", HasName: true, Wait: 50 * time.Millisecond, Mode: Shared},
		"lock,name:job,wait:0.05,mode:shared\n"},
	{Request{Action: ActLock, Name: "job", HasName: true, Wait: time.Minute, Limit: 5}, "lock,name:job,wait:60,limit:5\n"},
	{Request{Action: ActRelease, Name: "job", HasName: true}, "release,name:job\n"},
	{Request{Action: ActHolders}, ".holders\n"},
	{Request{Action: ActHolders, Name: "job", HasName: true}, ".holders,name:job\n"},
	{Request{Action: ActBreak, Name: "job", HasName: true, Auth: "admin"}, ".break,name:job,auth:admin\n"},
	{Request{Action: ActBreak, Name: "job", HasName: true}, ".break,name:job\n"},
	{Request{Action: ActQuit}, ".quit\n"},

	// Empty and zero values: left out, but for a name that was there.
	{Request{Action: ActLock, HasName: true}, "lock,name:\n"},
	{Request{Action: ActLock}, "lock\n"},
	{Request{Action: ActLock, Name: "x", Mode: Exclusive}, "lock,name:x\n"},

	// Bytes a value cannot carry.
	{Request{Action: ActSession, ClientID: "a,name:b\nc\x7f", Host: "h\r\x00", PID: 1, Auth: "t,k\n"},
		".session,client-id:a_name:b_c_,host:h__,pid:1,auth:t_k_\n"},
	{Request{Action: ActLock, Name: "a,b\nc\td"}, "lock,name:a?b?c\td\n"},
	{Request{Action: ActLock, Name: "x", ClientID: "é ü"}, "lock,name:x,client-id:é ü\n"},

	// Leases and maximum hold: every form the client sends.
	{Request{Action: ActLock, Name: "x", HasName: true, TTL: 2 * time.Hour}, "lock,name:x,ttl:7200\n"},
	{Request{Action: ActLock, Name: "x", HasName: true, TTL: 1500 * time.Millisecond, Wait: 5 * time.Second}, "lock,name:x,ttl:1.5,wait:5\n"},
	{Request{Action: ActLock, Name: "x", HasName: true, TTL: time.Millisecond}, "lock,name:x,ttl:0.001\n"},
	{Request{Action: ActLock, Name: "x", HasName: true, TTL: MaxTTL}, "lock,name:x,ttl:31622400\n"},
	{Request{Action: ActLock, Name: "x", HasName: true, TTL: time.Second + 7}, "lock,name:x,ttl:1.000000007\n"},
	{Request{Action: ActLock, Name: "x", HasName: true, MaxHold: 30 * time.Second}, "lock,name:x,max-hold:30\n"},
	{Request{Action: ActLock, Name: "job", HasName: true, ClientID: "ci@b1", Host: "b1", PID: 42, TTL: 2 * time.Hour,
		Wait: time.Minute, Mode: Shared, MaxHold: 24 * time.Hour, Auth: "tok"},
		"lock,name:job,client-id:ci@b1,host:b1,pid:42,ttl:7200,wait:60,mode:shared,max-hold:86400,auth:tok\n"},
	{Request{Action: ActLock, Name: "job", HasName: true, TTL: time.Hour, Limit: 3}, "lock,name:job,ttl:3600,limit:3\n"},
	{Request{Action: ActRenew, Lease: testLease}, ".renew,lease:" + testLease + "\n"},
	{Request{Action: ActRenew, Lease: testLease, TTL: time.Hour}, ".renew,lease:" + testLease + ",ttl:3600\n"},
	{Request{Action: ActRenew, Lease: testLease, TTL: 90 * time.Second, Auth: "tok"}, ".renew,lease:" + testLease + ",ttl:90,auth:tok\n"},
	{Request{Action: ActReleaseLease, Lease: testLease}, ".release,lease:" + testLease + "\n"},
	{Request{Action: ActIsHeld, Lease: testLease}, ".is-held,lease:" + testLease + "\n"},
	{Request{Action: ActIsHeld, Lease: testLease, ClientID: "me", PID: 9}, ".is-held,lease:" + testLease + ",client-id:me,pid:9\n"},
	// Ext with only lease keys: they make the line an extension one already.
	{Request{Action: ActRenew, Lease: testLease, Ext: true}, ".renew,lease:" + testLease + "\n"},
	{Request{Action: ActLock, Name: "x", TTL: time.Minute, Ext: true}, "lock,name:x,ttl:60\n"},
	{Request{Action: ActLock, Name: "x", MaxHold: time.Minute, Ext: true}, "lock,name:x,max-hold:60\n"},
	{Request{Action: ActRenew}, ".renew\n"},
	{Request{Action: ActReleaseLease, Ext: true}, ".release,mode:exclusive\n"},

	// No word for an unknown action: the line is malformed, as it must be.
	{Request{Action: ActUnknown, Name: "x"}, ",name:x\n"},
}

func TestAppendRequest(t *testing.T) {
	for _, tc := range appendReqCases {
		if got := AppendRequest(nil, tc.req); string(got) != tc.want {
			t.Errorf("AppendRequest(%+v) = %q; want %q", tc.req, got, tc.want)
		}
	}
	// It appends: what is already in the buffer stays.
	got := AppendRequest([]byte(".keepalive\n"), Request{Action: ActRelease, Name: "a", HasName: true})
	if string(got) != ".keepalive\nrelease,name:a\n" {
		t.Errorf("AppendRequest onto a buffer = %q", got)
	}
}

// TestAppendRequestParses: every line above but the broken ones reads back
// as the request it was made from.
func TestAppendRequestParses(t *testing.T) {
	for _, tc := range appendReqCases {
		line := AppendRequest(nil, tc.req)
		r, err := ParseRequest(line)
		if tc.req.Action == ActUnknown {
			if err != ErrMalformed {
				t.Errorf("ParseRequest(%q) = %v; want ErrMalformed", line, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRequest(%q): %v", line, err)
			continue
		}
		if want := formatted(tc.req); r != want {
			t.Errorf("ParseRequest(AppendRequest(%+v) = %q)\n = %+v\nwant %+v", tc.req, line, r, want)
		}
	}
}

func TestAppendRequestAllocs(t *testing.T) {
	buf := make([]byte, 0, 128)
	req := Request{Action: ActLock, Name: "build-42", HasName: true, Wait: 2500 * time.Millisecond, Mode: Shared, Limit: 3}
	if n := testing.AllocsPerRun(100, func() { buf = AppendRequest(buf[:0], req) }); n != 0 {
		t.Errorf("AppendRequest into a big enough buffer: %v allocations; want 0", n)
	}
	sess := Request{Action: ActSession, ClientID: "alice@build1", Host: "build1", PID: 4242, Auth: "tok"}
	if n := testing.AllocsPerRun(100, func() { buf = AppendRequest(buf[:0], sess) }); n != 0 {
		t.Errorf("AppendRequest(.session) into a big enough buffer: %v allocations; want 0", n)
	}
}

// formatted is what ParseRequest makes of AppendRequest(r): r with the
// bytes a line cannot carry replaced, values trimmed and clipped as the
// parser does, the name's presence and Ext as the keys written say.
func formatted(r Request) Request {
	trim := func(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }
	r.Ext = r.Ext || r.Host != "" || r.PID != 0 || r.Wait != 0 || r.Mode == Shared || r.Limit != 0 ||
		r.TTL != 0 || r.MaxHold != 0 || r.Lease != ""
	r.HasName = r.HasName || r.Name != ""
	r.Name = trim(string(appendName(nil, r.Name)))
	r.ClientID = clip([]byte(trim(string(appendInfo(nil, r.ClientID)))))
	r.Host = clip([]byte(trim(string(appendInfo(nil, r.Host)))))
	r.Auth = trim(string(appendInfo(nil, r.Auth)))
	r.Lease = trim(string(appendInfo(nil, r.Lease)))
	return r
}

// FuzzRequestRoundTrip checks both directions between AppendRequest and
// ParseRequest. A request made of the fuzzer's fields is formatted into
// exactly one line that parses back to it (formatted says what changes:
// only what a line cannot carry, and what the parser always trims). A line
// ParseRequest accepts, formatted again, parses to the same request: the
// two lines are equivalent, though the second is canonical (keys in
// AppendRequest's order, each once, no spaces, no unknown keys).
func FuzzRequestRoundTrip(f *testing.F) {
	for _, tc := range appendReqCases {
		r := tc.req
		f.Add([]byte(tc.want), uint8(r.Action), r.Name, r.ClientID, r.Host, r.PID, int64(r.Wait), r.Mode == Shared, r.Limit, r.Auth, r.Ext,
			int64(r.TTL), int64(r.MaxHold), r.Lease)
	}
	for _, tc := range reqCases {
		f.Add([]byte(tc.line), uint8(ActLock), "x", "", "", 0, int64(0), false, 0, "", false, int64(0), int64(0), "")
	}
	f.Fuzz(func(t *testing.T, line []byte, act uint8, name, cid, host string, pid int, wait int64, shared bool, limit int, auth string, ext bool,
		ttl, maxHold int64, lease string) {
		// Format, then parse: any request with values in range.
		r := Request{Action: Action(act), Name: name, ClientID: cid, Host: host, PID: pid, Wait: time.Duration(wait), Limit: limit, Auth: auth, Ext: ext,
			TTL: time.Duration(ttl), MaxHold: time.Duration(maxHold), Lease: lease}
		if shared {
			r.Mode = Shared
		}
		span := func(d time.Duration) bool { return d == 0 || d >= MinTTL && d <= MaxTTL }
		if r.Action != ActUnknown && r.Action.String() != "" && pid >= 0 && pid <= 1<<31-1 &&
			(wait >= 0 && r.Wait <= MaxWait || r.Wait == WaitForever) && limit >= 0 && limit <= MaxLimit &&
			span(r.TTL) && span(r.MaxHold) && (lease == "" || ValidLeaseID(lease)) {
			out := AppendRequest(nil, r)
			if bytes.IndexByte(out, '\n') != len(out)-1 {
				t.Fatalf("AppendRequest(%+v) = %q: not one line", r, out)
			}
			got, err := ParseRequest(out)
			if r.Wait > exactWaitBound && r.Wait != WaitForever && near(got.Wait, r.Wait) {
				got.Wait = r.Wait // long waits come back within a microsecond
			}
			fixLong(&got, r)
			if want := formatted(r); err != nil || got != want {
				t.Fatalf("ParseRequest(AppendRequest(%+v) = %q)\n = %+v, %v\nwant %+v", r, out, got, err, want)
			}
		}

		// Parse, then format, then parse.
		r1, err := ParseRequest(line)
		if err != nil || r1.Action == ActUnknown {
			return
		}
		canon := AppendRequest(nil, r1)
		r2, err := ParseRequest(canon)
		if r1.Wait > exactWaitBound && r1.Wait != WaitForever && near(r2.Wait, r1.Wait) {
			r2.Wait = r1.Wait
		}
		fixLong(&r2, r1)
		if want := formatted(r1); err != nil || r2 != want {
			t.Fatalf("ParseRequest(%q) = %+v\nformatted %q parses to %+v, %v\nwant %+v", line, r1, canon, r2, err, want)
		}
		// Formatting what a canonical line parses to gives that line again.
		if (r2.Wait <= exactWaitBound || r2.Wait == WaitForever) && r2.TTL <= exactWaitBound && r2.MaxHold <= exactWaitBound {
			fixed := AppendRequest(nil, r2)
			r3, err := ParseRequest(fixed)
			if again := AppendRequest(nil, r3); err != nil || !bytes.Equal(again, fixed) {
				t.Fatalf("ParseRequest(%q): canonical %q formats again as %q, %v", line, fixed, again, err)
			}
		}
	})
}

// fixLong sets got's ttl and max-hold to want's when they are long (over
// 48 days, past float64's nanoseconds) and came back within a microsecond.
func fixLong(got *Request, want Request) {
	if want.TTL > exactWaitBound && near(got.TTL, want.TTL) {
		got.TTL = want.TTL
	}
	if want.MaxHold > exactWaitBound && near(got.MaxHold, want.MaxHold) {
		got.MaxHold = want.MaxHold
	}
}

// near: a long wait comes back within a microsecond.
func near(a, b time.Duration) bool {
	d := a - b
	return d >= -time.Microsecond && d <= time.Microsecond
}
