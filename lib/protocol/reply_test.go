package protocol

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

const maxToken = math.MaxUint64

// appendCases: every answer of doc.go, legacy and extension, byte for byte.
var appendCases = []struct {
	kind  Kind
	name  string
	token uint64
	msg   string
	want  string
}{
	// Legacy answers: exactly tcpnetlock's, nothing added.
	{KindOK, "", 0, "", "ok\n"},
	{KindNotGranted, "", 0, "", "not-granted\n"},
	{KindReleased, "", 0, "", "released\n"},
	{KindAlive, "", 0, "", "alive\n"},
	{KindPong, "", 0, "", "pong\n"},
	{KindBadAction, "", 0, "", "bad-action\n"},
	{KindBadRequest, "", 0, "", "bad-request\n"},
	{KindErr, "", 0, "invalid lock name", "err,invalid lock name\n"},
	{KindStats, "", 0, `{"lock_count": 1, "maxrss": 5000, "requests_count": 3}`, `stats,{"lock_count": 1, "maxrss": 5000, "requests_count": 3}` + "\n"},

	// Extension answers on a fresh connection.
	{KindOK, "", 7, "", "ok,token:7\n"},
	{KindOK, "", maxToken, "", "ok,token:18446744073709551615\n"},
	{KindTimeout, "", 0, "", "timeout\n"},
	{KindErr, "", 0, "limit mismatch: held with limit 3", "err,limit mismatch: held with limit 3\n"},
	{KindErr, "", 0, "queue full", "err,queue full\n"},
	{KindErr, "", 0, "invalid wait: want seconds >= 0 or inf", "err,invalid wait: want seconds >= 0 or inf\n"},
	{KindErr, "", 0, "line too long", "err,line too long\n"},
	{KindHolders, "", 0, `{"a": {"mode": "shared"}}`, `holders,{"a": {"mode": "shared"}}` + "\n"},
	{KindHolders, "", 0, `{}`, "holders,{}\n"},

	// Session answers carry the name.
	{KindOK, "a", 7, "", "ok,name:a,token:7\n"},
	{KindOK, "build-42", 1, "", "ok,name:build-42,token:1\n"},
	{KindOK, "a:b@c/d.e", 7, "", "ok,name:a:b@c/d.e,token:7\n"},
	{KindOK, "a", 0, "", "ok,name:a\n"},
	{KindNotGranted, "a", 0, "", "not-granted,name:a\n"},
	{KindTimeout, "a", 0, "", "timeout,name:a\n"},
	{KindReleased, "a", 0, "", "released,name:a\n"},
	{KindCancelled, "a", 0, "", "cancelled,name:a\n"},
	{KindErr, "a", 0, "not held", "err,name:a,not held\n"},
	{KindErr, "a", 0, "limit mismatch: held with limit 3", "err,name:a,limit mismatch: held with limit 3\n"},
	{KindBye, "", 0, "", "bye\n"},
	{KindLost, "a", 0, "", "lost,name:a\n"},
	{KindShuttingDown, "", 0, "", "shutting-down\n"},
	{KindReleased, "job", 0, "", "released,name:job\n"}, // answer to .release,lease:ID
	{KindErr, "", 0, ReasonNoLease, "err,no such lease\n"},
	{KindErr, "", 0, "invalid ttl: too large (at most 366 days)", "err,invalid ttl: too large (at most 366 days)\n"},

	// What AppendReply does with arguments no answer uses.
	{KindUnknown, "", 0, "", "\n"},
	{Kind(200), "", 0, "", "\n"},
	{KindSession, "", 0, "", "session\n"},
}

func TestAppendReply(t *testing.T) {
	for _, tc := range appendCases {
		if got := AppendReply(nil, tc.kind, tc.name, tc.token, tc.msg); string(got) != tc.want {
			t.Errorf("AppendReply(%v, %q, %d, %q) = %q; want %q", tc.kind, tc.name, tc.token, tc.msg, got, tc.want)
		}
	}
	// It appends: what is already in the buffer stays.
	got := AppendReply([]byte("pong\n"), KindOK, "a", 7, "")
	if string(got) != "pong\nok,name:a,token:7\n" {
		t.Errorf("AppendReply onto a buffer = %q", got)
	}
}

func TestAppendReplyAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendReply(buf[:0], KindOK, "build-42", 1234567, "") }); n != 0 {
		t.Errorf("AppendReply into a big enough buffer: %v allocations; want 0", n)
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{
		KindUnknown: "", KindOK: "ok", KindNotGranted: "not-granted", KindTimeout: "timeout",
		KindReleased: "released", KindCancelled: "cancelled", KindAlive: "alive", KindPong: "pong",
		KindStats: "stats", KindHolders: "holders", KindSession: "session", KindErr: "err",
		KindBadAction: "bad-action", KindBadRequest: "bad-request", KindBye: "bye",
		KindLost: "lost", KindShuttingDown: "shutting-down", KindRenewed: "renewed", KindHeld: "held",
		Kind(len(kindNames)): "", 255: "",
	}
	for k, s := range kindNames {
		if w, ok := want[Kind(k)]; !ok || w != s {
			t.Errorf("kind %d %q is not in this test", k, s)
		}
	}
	for k, s := range want {
		if got := k.String(); got != s {
			t.Errorf("Kind(%d).String() = %q; want %q", k, got, s)
		}
	}
}

func TestAppendSession(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{30 * time.Second, "session,dead-peer-timeout:30\n"},
		{1500 * time.Millisecond, "session,dead-peer-timeout:1.5\n"},
		{250 * time.Millisecond, "session,dead-peer-timeout:0.25\n"},
		{time.Second + 7, "session,dead-peer-timeout:1.000000007\n"},
		{10 * time.Minute, "session,dead-peer-timeout:600\n"},
	} {
		line := AppendSession(nil, tc.d)
		if string(line) != tc.want {
			t.Errorf("AppendSession(%v) = %q; want %q", tc.d, line, tc.want)
		}
		r, err := ParseReply(line)
		if err != nil || r != (Reply{Kind: KindSession, DeadPeer: tc.d}) {
			t.Errorf("ParseReply(%q) = %+v, %v; want DeadPeer %v", line, r, err, tc.d)
		}
	}
	if got := AppendSession([]byte("x"), time.Second); string(got) != "xsession,dead-peer-timeout:1\n" {
		t.Errorf("AppendSession onto a buffer = %q", got)
	}
}

// replyCases: what ParseReply makes of each line; wantErr means ErrBadReply.
var replyCases = []struct {
	line    string
	want    Reply
	wantErr bool
}{
	{line: "ok\n", want: Reply{Kind: KindOK}},
	{line: "ok", want: Reply{Kind: KindOK}},
	{line: "ok\r\n", want: Reply{Kind: KindOK}},
	{line: "ok,token:7\n", want: Reply{Kind: KindOK, Token: 7}},
	{line: "ok,token:0\n", want: Reply{Kind: KindOK}},
	{line: "ok,token:18446744073709551615\n", want: Reply{Kind: KindOK, Token: maxToken}},
	{line: "ok,name:a,token:7\n", want: Reply{Kind: KindOK, Name: "a", Token: 7}},
	{line: "ok,token:7,name:a\n", want: Reply{Kind: KindOK, Name: "a", Token: 7}},
	{line: "ok,name:a:b,token:7\n", want: Reply{Kind: KindOK, Name: "a:b", Token: 7}},
	{line: "ok,name:a,name:b\n", want: Reply{Kind: KindOK, Name: "b"}},
	{line: "ok,name:\n", want: Reply{Kind: KindOK}},
	{line: "ok,token:7,future:thing\n", want: Reply{Kind: KindOK, Token: 7}}, // unknown keys: ignored
	{line: "not-granted\n", want: Reply{Kind: KindNotGranted}},
	{line: "not-granted,name:a\n", want: Reply{Kind: KindNotGranted, Name: "a"}},
	{line: "timeout\n", want: Reply{Kind: KindTimeout}},
	{line: "timeout,name:a\n", want: Reply{Kind: KindTimeout, Name: "a"}},
	{line: "released\n", want: Reply{Kind: KindReleased}},
	{line: "released,name:a\n", want: Reply{Kind: KindReleased, Name: "a"}},
	{line: "cancelled,name:a\n", want: Reply{Kind: KindCancelled, Name: "a"}},
	{line: "alive\n", want: Reply{Kind: KindAlive}},
	{line: "pong\n", want: Reply{Kind: KindPong}},
	{line: "bye\n", want: Reply{Kind: KindBye}},
	{line: "lost,name:a\n", want: Reply{Kind: KindLost, Name: "a"}},
	{line: "shutting-down\n", want: Reply{Kind: KindShuttingDown}},
	{line: "bad-action\n", want: Reply{Kind: KindBadAction}},
	{line: "bad-request\n", want: Reply{Kind: KindBadRequest}},
	{line: "err,invalid lock name\n", want: Reply{Kind: KindErr, Msg: "invalid lock name"}},
	{line: "err,name:a,not held\n", want: Reply{Kind: KindErr, Name: "a", Msg: "not held"}},
	{line: "err,name:a:b,not held\n", want: Reply{Kind: KindErr, Name: "a:b", Msg: "not held"}},
	{line: "err,name:a\n", want: Reply{Kind: KindErr, Name: "a"}},
	{line: "err,limit mismatch: held with limit 3\n", want: Reply{Kind: KindErr, Msg: "limit mismatch: held with limit 3"}},
	{line: "err,a, b, c: d\n", want: Reply{Kind: KindErr, Msg: "a, b, c: d"}},
	{line: "err,\n", want: Reply{Kind: KindErr}},
	{line: `stats,{"lock_count": 1, "maxrss": 5000}` + "\n", want: Reply{Kind: KindStats, Msg: `{"lock_count": 1, "maxrss": 5000}`}},
	{line: `holders,{"a": [1, 2]}` + "\r\n", want: Reply{Kind: KindHolders, Msg: `{"a": [1, 2]}`}},
	{line: "holders,{", want: Reply{Kind: KindHolders, Msg: "{"}}, // the JSON is the caller's to check
	{line: "session,dead-peer-timeout:30\n", want: Reply{Kind: KindSession, DeadPeer: 30 * time.Second}},
	{line: "session,dead-peer-timeout:0.25\n", want: Reply{Kind: KindSession, DeadPeer: 250 * time.Millisecond}},
	{line: "session,dead-peer-timeout:1.000000007\n", want: Reply{Kind: KindSession, DeadPeer: time.Second + 7}},
	{line: "session,dead-peer-timeout:1000000\n", want: Reply{Kind: KindSession, DeadPeer: 1e6 * time.Second}},
	{line: "session\n", want: Reply{Kind: KindSession}},

	// Leases and losses.
	{line: "ok,token:7,lease:" + testLease + ",ttl:7200\n", want: Reply{Kind: KindOK, Token: 7, Lease: testLease, TTL: 2 * time.Hour}},
	{line: "ok,name:a,token:7,lease:" + testLease + ",ttl:1.5\n", want: Reply{Kind: KindOK, Name: "a", Token: 7, Lease: testLease, TTL: 1500 * time.Millisecond}},
	{line: "renewed,name:a,token:7,ttl:3600\n", want: Reply{Kind: KindRenewed, Name: "a", Token: 7, TTL: time.Hour}},
	{line: "renewed,name:a,token:7,ttl:7199.999\n", want: Reply{Kind: KindRenewed, Name: "a", Token: 7, TTL: 2*time.Hour - time.Millisecond}},
	{line: "held,name:a,token:7,ttl:0.001\n", want: Reply{Kind: KindHeld, Name: "a", Token: 7, TTL: time.Millisecond}},
	{line: "held,name:a,token:7,ttl:0\n", want: Reply{Kind: KindHeld, Name: "a", Token: 7}},
	{line: "held,name:a,token:7,ttl:2h\n", want: Reply{Kind: KindHeld, Name: "a", Token: 7, TTL: 2 * time.Hour}}, // one duration rule
	{line: "lost,name:a,why:maximum hold of 2s reached\n", want: Reply{Kind: KindLost, Name: "a", Why: "maximum hold of 2s reached"}},
	{line: "lost,name:a,why:a:b; c\n", want: Reply{Kind: KindLost, Name: "a", Why: "a:b; c"}},
	{line: "lost,name:a,why:\n", want: Reply{Kind: KindLost, Name: "a"}},
	{line: "lost,name:a,why:\x1b[2Jx\x7f\n", want: Reply{Kind: KindLost, Name: "a", Why: " [2Jx "}},
	{line: "ok,token:7,lease:" + strings.ToUpper(testLease) + ",ttl:1\n", wantErr: true},
	{line: "ok,token:7,lease:" + testLease[:31] + ",ttl:1\n", wantErr: true},
	{line: "ok,token:7,lease:,ttl:1\n", wantErr: true},
	{line: "renewed,name:a,token:7,ttl:\n", wantErr: true},
	{line: "renewed,name:a,token:7,ttl:-1\n", wantErr: true},
	{line: "renewed,name:a,token:7,ttl:inf\n", wantErr: true},
	{line: "renewed,name:a,token:7,ttl:1e3\n", wantErr: true},
	{line: "held,name:a,token:7,ttl\n", wantErr: true},

	{line: "", wantErr: true},
	{line: "\n", wantErr: true},
	{line: "\r\n", wantErr: true},
	{line: "OK\n", wantErr: true},
	{line: "ok \n", wantErr: true},
	{line: " ok\n", wantErr: true},
	{line: "nope\n", wantErr: true},
	{line: ",ok\n", wantErr: true},
	{line: "ok,\n", wantErr: true},
	{line: "ok,token\n", wantErr: true},
	{line: "ok,token:\n", wantErr: true},
	{line: "ok,token:x\n", wantErr: true},
	{line: "ok,token:-1\n", wantErr: true},
	{line: "ok,token:+1\n", wantErr: true},
	{line: "ok,token:18446744073709551616\n", wantErr: true},
	{line: "ok,token:7,token:x\n", wantErr: true},
	{line: "ok,name:a,\n", wantErr: true},
	{line: "ok\n\n", wantErr: true},
	{line: "ok,name:a\nb\n", wantErr: true},
	{line: "err,a\nb\n", wantErr: true},
	{line: "stats,{\n}\n", wantErr: true},
	{line: "err\n", wantErr: true},
	{line: "stats\n", wantErr: true},
	{line: "stats,\n", wantErr: true},
	{line: "stats,[]\n", wantErr: true},
	{line: "stats, {}\n", wantErr: true},
	{line: "holders\n", wantErr: true},
	{line: "holders,x\n", wantErr: true},
	{line: "session,dead-peer-timeout:0\n", wantErr: true},
	{line: "session,dead-peer-timeout:-1\n", wantErr: true},
	{line: "session,dead-peer-timeout:1000001\n", wantErr: true},
	{line: "session,dead-peer-timeout:NaN\n", wantErr: true},
	{line: "session,dead-peer-timeout:Inf\n", wantErr: true},
	{line: "session,dead-peer-timeout:abc\n", wantErr: true},
	{line: "session,dead-peer-timeout:\n", wantErr: true},
	{line: "session,dead-peer-timeout:30s\n", wantErr: true},
}

func TestParseReply(t *testing.T) {
	for _, tc := range replyCases {
		got, err := ParseReply([]byte(tc.line))
		if tc.wantErr {
			if err != ErrBadReply {
				t.Errorf("ParseReply(%q) = %+v, %v; want ErrBadReply", tc.line, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseReply(%q)\n got %+v, %v\nwant %+v, nil", tc.line, got, err, tc.want)
		}
	}
}

// TestParseAppendedReplies: every line AppendReply writes in appendCases
// parses back to its arguments, except the two that are no answer at all.
func TestParseAppendedReplies(t *testing.T) {
	for _, tc := range appendCases {
		got, err := ParseReply([]byte(tc.want))
		if !knownKind(tc.kind) {
			if err != ErrBadReply {
				t.Errorf("ParseReply(%q) = %+v, %v; want ErrBadReply", tc.want, got, err)
			}
			continue
		}
		want := Reply{Kind: tc.kind, Name: tc.name, Token: tc.token, Msg: tc.msg}
		if err != nil || got != want {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v", tc.want, got, err, want)
		}
	}
}

// validReply says which arguments of AppendReply make a line that ParseReply
// gives back unchanged. It is the contract between the two, written down:
//   - the name, when there is one, is a valid lock name;
//   - stats and holders carry only a JSON document (msg starting with '{');
//   - err carries a message, maybe after a name, and no token; without a
//     name, the message must not itself start with "name:";
//   - every other kind carries no msg;
//   - msg holds no '\n' and does not end in '\r' (the line ending would eat it).
func validReply(kind Kind, name string, token uint64, msg string) bool {
	if !knownKind(kind) || (name != "" && !ValidName(name)) ||
		strings.Contains(msg, "\n") || strings.HasSuffix(msg, "\r") {
		return false
	}
	switch kind {
	case KindStats, KindHolders:
		return name == "" && token == 0 && strings.HasPrefix(msg, "{")
	case KindErr:
		return token == 0 && msg != "" && (name != "" || !strings.HasPrefix(msg, "name:"))
	}
	return msg == ""
}

func knownKind(k Kind) bool { return k != KindUnknown && int(k) < len(kindNames) }

func checkRoundTrip(t *testing.T, kind Kind, name string, token uint64, msg string) {
	t.Helper()
	line := AppendReply(nil, kind, name, token, msg)
	if !bytes.HasSuffix(line, []byte("\n")) {
		t.Fatalf("AppendReply(%v, %q, %d, %q) = %q: no \\n at the end", kind, name, token, msg, line)
	}
	if !validReply(kind, name, token, msg) {
		return
	}
	if bytes.Count(line, []byte("\n")) != 1 || bytes.HasSuffix(line, []byte("\r\n")) {
		t.Fatalf("AppendReply(%v, %q, %d, %q) = %q: not one line ending in exactly \\n", kind, name, token, msg, line)
	}
	got, err := ParseReply(line)
	want := Reply{Kind: kind, Name: name, Token: token, Msg: msg}
	if err != nil || got != want {
		t.Fatalf("ParseReply(AppendReply(%v, %q, %d, %q) = %q) = %+v, %v", kind, name, token, msg, line, got, err)
	}
}

// TestReplyRoundTrip: AppendReply then ParseReply is the identity on every
// combination of kinds, names, tokens and messages that validReply allows.
func TestReplyRoundTrip(t *testing.T) {
	names := []string{"", "a", "build-42", "a:b", "a@b/c.d", "-", strings.Repeat("n", MaxNameLen)}
	tokens := []uint64{0, 1, 7, 1 << 53, maxToken}
	msgs := []string{"", "not held", "invalid lock name", "x,y:z", "name", "a\rb", "{}", `{"a": 1, "b": [2, 3]}`, "{,}", "é☃"}
	n := 0
	for k := KindUnknown; int(k) <= len(kindNames); k++ {
		for _, name := range names {
			for _, tok := range tokens {
				for _, msg := range msgs {
					checkRoundTrip(t, k, name, tok, msg)
					if validReply(k, name, tok, msg) {
						n++
					}
				}
			}
		}
	}
	if n < 300 { // the predicate must not quietly allow almost nothing
		t.Fatalf("only %d valid combinations", n)
	}
}

// TestReplyRoundTripLimits pins down the combinations validReply excludes,
// so that a change in either function shows up here.
func TestReplyRoundTripLimits(t *testing.T) {
	for _, tc := range []struct {
		kind  Kind
		name  string
		token uint64
		msg   string
		got   Reply // what ParseReply makes of it; Kind 0 means refused
	}{
		{KindErr, "", 0, "name:x", Reply{Kind: KindErr, Name: "x"}},
		{KindErr, "a", 7, "m", Reply{Kind: KindErr, Name: "a", Msg: "token:7,m"}},
		{KindErr, "", 0, "", Reply{}},
		{KindErr, "", 0, "m\r", Reply{Kind: KindErr, Msg: "m"}},
		{KindOK, "", 0, "m", Reply{}},
		{KindOK, "", 0, "k:v", Reply{Kind: KindOK}},
		{KindOK, "a,b", 0, "", Reply{}},
		{KindStats, "", 0, "", Reply{}},
		{KindStats, "a", 0, "{}", Reply{}},
		{KindStats, "", 0, "[]", Reply{}},
	} {
		if validReply(tc.kind, tc.name, tc.token, tc.msg) {
			t.Errorf("validReply(%v, %q, %d, %q) = true", tc.kind, tc.name, tc.token, tc.msg)
		}
		line := AppendReply(nil, tc.kind, tc.name, tc.token, tc.msg)
		got, err := ParseReply(line)
		if tc.got.Kind == KindUnknown {
			if err != ErrBadReply {
				t.Errorf("ParseReply(%q) = %+v, %v; want ErrBadReply", line, got, err)
			}
		} else if err != nil || got != tc.got {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v", line, got, err, tc.got)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, tc := range replyCases {
		f.Add([]byte(tc.line))
	}
	for _, tc := range appendCases {
		f.Add([]byte(tc.want))
	}
	f.Add(AppendSession(nil, 30*time.Second))
	f.Fuzz(func(t *testing.T, line []byte) {
		in := bytes.Clone(line)
		r, err := ParseReply(line)
		if !bytes.Equal(in, line) {
			t.Fatalf("ParseReply changed its input: %q -> %q", in, line)
		}
		if err != nil {
			if err != ErrBadReply {
				t.Fatalf("ParseReply(%q): error %v; want ErrBadReply", in, err)
			}
			return
		}
		// Strings are copies.
		name, msg := strings.Clone(r.Name), strings.Clone(r.Msg)
		for i := range line {
			line[i] = 'Z'
		}
		if r.Name != name || r.Msg != msg {
			t.Fatalf("ParseReply(%q): Reply aliases its input", in)
		}
		copy(line, in)

		if !knownKind(r.Kind) {
			t.Fatalf("ParseReply(%q): kind %d", in, r.Kind)
		}
		if strings.ContainsAny(r.Name, "\n,") || strings.Contains(r.Msg, "\n") {
			t.Fatalf("ParseReply(%q): kept %q, %q", in, r.Name, r.Msg)
		}
		if (r.Kind == KindStats || r.Kind == KindHolders) && !strings.HasPrefix(r.Msg, "{") {
			t.Fatalf("ParseReply(%q): %v without a JSON object: %q", in, r.Kind, r.Msg)
		}
		if r.Msg != "" && r.Kind != KindErr && r.Kind != KindStats && r.Kind != KindHolders {
			t.Fatalf("ParseReply(%q): msg %q on %v", in, r.Msg, r.Kind)
		}
		if r.DeadPeer < 0 || r.DeadPeer > 1e6*time.Second {
			t.Fatalf("ParseReply(%q): dead-peer timeout %d", in, r.DeadPeer)
		}

		// The line ending does not matter.
		if !bytes.ContainsAny(in, "\r\n") {
			for _, eol := range []string{"\n", "\r\n"} {
				r2, err := ParseReply(append(bytes.Clone(in), eol...))
				if err != nil || r2 != r {
					t.Fatalf("ParseReply(%q) = %+v, but with %q: %+v, %v", in, r, eol, r2, err)
				}
			}
		}

		// Written back, a valid reply reads the same; a session answer keeps
		// its dead-peer timeout.
		if validReply(r.Kind, r.Name, r.Token, r.Msg) {
			want := r
			want.DeadPeer, want.Degraded, want.Lease, want.TTL, want.Why = 0, "", "", 0, ""
			line := AppendReply(nil, r.Kind, r.Name, r.Token, r.Msg)
			if got, err := ParseReply(line); err != nil || got != want {
				t.Fatalf("ParseReply(%q) = %+v; written back %q: %+v, %v", in, r, line, got, err)
			}
		}
		// A lease answer, or a loss, written back by its own formatter.
		if (r.Kind == KindOK || r.Kind == KindRenewed || r.Kind == KindHeld) && r.Msg == "" && (r.Name == "" || ValidName(r.Name)) &&
			r.TTL%time.Millisecond == 0 {
			want := Reply{Kind: r.Kind, Name: r.Name, Token: r.Token, Lease: r.Lease, TTL: r.TTL}
			line := AppendLease(nil, r.Kind, r.Name, r.Token, r.Lease, r.TTL)
			if got, err := ParseReply(line); err != nil || got != want {
				t.Fatalf("ParseReply(%q) = %+v; AppendLease gives %q: %+v, %v", in, r, line, got, err)
			}
		}
		if r.Kind == KindLost && ValidName(r.Name) {
			want := Reply{Kind: KindLost, Name: r.Name, Why: r.Why}
			line := AppendLost(nil, r.Name, r.Why)
			if got, err := ParseReply(line); err != nil || got != want {
				t.Fatalf("ParseReply(%q) = %+v; AppendLost gives %q: %+v, %v", in, r, line, got, err)
			}
		}
		if r.Kind == KindSession && r.DeadPeer > 0 {
			line := AppendSession(nil, r.DeadPeer)
			if got, err := ParseReply(line); err != nil || got.DeadPeer != r.DeadPeer {
				t.Fatalf("ParseReply(%q) = %+v; AppendSession gives %q: %+v, %v", in, r, line, got, err)
			}
		}
	})
}

// FuzzAppendReply: ParseReply(AppendReply(...)) is the identity for valid
// arguments, and a valid name survives every answer that carries one.
func FuzzAppendReply(f *testing.F) {
	for _, tc := range appendCases {
		f.Add(uint8(tc.kind), tc.name, tc.token, tc.msg)
	}
	for _, tc := range nameCases {
		f.Add(uint8(KindOK), tc.name, uint64(7), "")
		f.Add(uint8(KindErr), tc.name, uint64(0), "not held")
	}
	f.Fuzz(func(t *testing.T, kind uint8, name string, token uint64, msg string) {
		checkRoundTrip(t, Kind(kind), name, token, msg)
		if !ValidName(name) {
			return
		}
		for _, k := range []Kind{KindOK, KindNotGranted, KindTimeout, KindReleased, KindCancelled, KindAlive, KindPong, KindBye, KindBadAction, KindBadRequest, KindSession, KindLost, KindShuttingDown} {
			line := AppendReply(nil, k, name, token, "")
			if r, err := ParseReply(line); err != nil || r.Name != name || r.Token != token {
				t.Fatalf("ParseReply(%q) = %+v, %v; want name %q token %d", line, r, err, name, token)
			}
		}
		if strings.Contains(msg, "\n") {
			return
		}
		line := AppendReply(nil, KindErr, name, 0, msg)
		if r, err := ParseReply(line); err != nil || r.Name != name {
			t.Fatalf("ParseReply(%q) = %+v, %v; want name %q", line, r, err, name)
		}
	})
}

// leaseCases: every answer about a lease, byte for byte.
var leaseCases = []struct {
	kind  Kind
	name  string
	token uint64
	lease string
	ttl   time.Duration
	want  string
}{
	{KindOK, "", 7, testLease, 2 * time.Hour, "ok,token:7,lease:" + testLease + ",ttl:7200\n"},
	{KindOK, "build-42", 7, testLease, 2 * time.Hour, "ok,name:build-42,token:7,lease:" + testLease + ",ttl:7200\n"},
	{KindOK, "a", maxToken, testLease, time.Millisecond, "ok,name:a,token:18446744073709551615,lease:" + testLease + ",ttl:0.001\n"},
	{KindRenewed, "a", 7, "", time.Hour, "renewed,name:a,token:7,ttl:3600\n"},
	{KindHeld, "a", 7, "", 1500 * time.Millisecond, "held,name:a,token:7,ttl:1.5\n"},
	// What remains is cut down to the millisecond, never rounded up.
	{KindHeld, "a", 7, "", 2*time.Hour - time.Nanosecond, "held,name:a,token:7,ttl:7199.999\n"},
	{KindHeld, "a", 7, "", time.Millisecond - 1, "held,name:a,token:7,ttl:0\n"},
	{KindHeld, "a", 7, "", 0, "held,name:a,token:7,ttl:0\n"},
	{KindHeld, "a", 7, "", -time.Second, "held,name:a,token:7,ttl:0\n"},
	{KindRenewed, "a", 7, "", MaxTTL, "renewed,name:a,token:7,ttl:31622400\n"},
}

func TestAppendLease(t *testing.T) {
	for _, tc := range leaseCases {
		line := AppendLease(nil, tc.kind, tc.name, tc.token, tc.lease, tc.ttl)
		if string(line) != tc.want {
			t.Errorf("AppendLease(%v, %q, %d, %q, %v) = %q; want %q", tc.kind, tc.name, tc.token, tc.lease, tc.ttl, line, tc.want)
			continue
		}
		want := Reply{Kind: tc.kind, Name: tc.name, Token: tc.token, Lease: tc.lease, TTL: max(tc.ttl, 0).Truncate(time.Millisecond)}
		if r, err := ParseReply(line); err != nil || r != want {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v", line, r, err, want)
		}
	}
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() { buf = AppendLease(buf[:0], KindOK, "build-42", 7, testLease, time.Hour) }); n != 0 {
		t.Errorf("AppendLease into a big enough buffer: %v allocations; want 0", n)
	}
}

// TestAppendLost: without a reason, the line of .break, byte for byte
// AppendReply's; with one, the reason stays one value of one line.
func TestAppendLost(t *testing.T) {
	for _, tc := range []struct{ name, why, line, back string }{
		{"a", "", "lost,name:a\n", ""},
		{"a", "maximum hold of 2s reached", "lost,name:a,why:maximum hold of 2s reached\n", "maximum hold of 2s reached"},
		{"a", "a,b\nc\r\x7fd\x00", "lost,name:a,why:a;b c  d \n", "a;b c  d "},
		{"a", "x:y,why:z", "lost,name:a,why:x:y;why:z\n", "x:y;why:z"},
		{"a", ",", "lost,name:a,why:;\n", ";"},
	} {
		got := string(AppendLost(nil, tc.name, tc.why))
		if got != tc.line {
			t.Errorf("AppendLost(%q, %q) = %q, want %q", tc.name, tc.why, got, tc.line)
			continue
		}
		r, err := ParseReply([]byte(got))
		if err != nil || r != (Reply{Kind: KindLost, Name: tc.name, Why: tc.back}) {
			t.Errorf("ParseReply(%q) = %+v, %v; want lost %q, why %q", got, r, err, tc.name, tc.back)
		}
	}
	if a, b := AppendLost(nil, "job", ""), AppendReply(nil, KindLost, "job", 0, ""); !bytes.Equal(a, b) {
		t.Errorf("AppendLost without a reason = %q; AppendReply = %q", a, b)
	}
}

// FuzzAppendLease: what AppendLease and AppendLost write is one line that
// ParseReply reads back, whatever the reason holds.
func FuzzAppendLease(f *testing.F) {
	for _, tc := range leaseCases {
		f.Add(uint8(tc.kind), tc.name, tc.token, tc.lease, int64(tc.ttl), "")
	}
	f.Add(uint8(KindLost), "a", uint64(0), "", int64(0), "maximum hold of 2s reached")
	f.Add(uint8(KindLost), "a", uint64(0), "", int64(0), "a,b\nc")
	f.Fuzz(func(t *testing.T, kind uint8, name string, token uint64, lease string, ttl int64, why string) {
		if name != "" && !ValidName(name) {
			return
		}
		line := AppendLost(nil, name, why)
		if bytes.IndexByte(line, '\n') != len(line)-1 || bytes.Count(line, []byte(",")) > 2 {
			t.Fatalf("AppendLost(%q, %q) = %q: not one line of at most two keys", name, why, line)
		}
		r, err := ParseReply(line)
		if err != nil || r.Kind != KindLost || r.Name != name || r.Why != string(appendText(nil, why)) {
			t.Fatalf("ParseReply(AppendLost(%q, %q) = %q) = %+v, %v", name, why, line, r, err)
		}

		k := Kind(kind)
		if k != KindOK && k != KindRenewed && k != KindHeld || lease != "" && !ValidLeaseID(lease) {
			return
		}
		d := time.Duration(ttl)
		line = AppendLease(nil, k, name, token, lease, d)
		want := Reply{Kind: k, Name: name, Token: token, Lease: lease, TTL: max(d, 0).Truncate(time.Millisecond)}
		if want.TTL > exactWaitBound {
			if r, err := ParseReply(line); err == nil && near(r.TTL, want.TTL) {
				want.TTL = r.TTL // long spans come back within a microsecond
			}
		}
		if r, err := ParseReply(line); err != nil || r != want {
			t.Fatalf("ParseReply(AppendLease(%v, %q, %d, %q, %v) = %q) = %+v, %v; want %+v", k, name, token, lease, d, line, r, err, want)
		}
	})
}

// TestAppendPong: a plain pong is tcpnetlock's, a degraded one carries its
// reason as one value (commas and control characters replaced), and
// ParseReply reads it back.
func TestAppendPong(t *testing.T) {
	for _, tc := range []struct{ why, line, back string }{
		{"", "pong\n", ""},
		{"disk full", "pong,degraded:disk full\n", "disk full"},
		{"a,b\nc\x7fd", "pong,degraded:a;b c d\n", "a;b c d"},
	} {
		got := string(AppendPong(nil, tc.why))
		if got != tc.line {
			t.Errorf("AppendPong(%q) = %q, want %q", tc.why, got, tc.line)
			continue
		}
		r, err := ParseReply([]byte(got))
		if err != nil || r.Kind != KindPong || r.Degraded != tc.back {
			t.Errorf("ParseReply(%q) = %+v, %v; want pong, degraded %q", got, r, err, tc.back)
		}
	}
}

func TestIsReason(t *testing.T) {
	for _, tc := range []struct {
		msg, reason string
		want        bool
	}{
		{"not held", ReasonNotHeld, true},
		{"limit mismatch", ReasonLimitMismatch, true},
		{"limit mismatch: held with limit 3", ReasonLimitMismatch, true},
		{"limit mismatched", ReasonLimitMismatch, false},
		{"limit mismatch:3", ReasonLimitMismatch, false},
		{"limit", ReasonLimitMismatch, false},
		{"", ReasonNotHeld, false},
		{"Not held", ReasonNotHeld, false},
		{" not held", ReasonNotHeld, false},
		{"authentication failed", ReasonAuthRequired, false},
	} {
		if got := IsReason(tc.msg, tc.reason); got != tc.want {
			t.Errorf("IsReason(%q, %q) = %v; want %v", tc.msg, tc.reason, got, tc.want)
		}
	}
}
