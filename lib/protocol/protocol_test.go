package protocol

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// reqCase is one request line and what ParseRequest must make of it. wantErr
// is the exact error text ("" for success); on error want is not checked.
type reqCase struct {
	line    string
	want    Request
	wantErr string
}

const (
	errMalformed = "malformed request"
	errWaitSyn   = "invalid wait: want seconds, a duration like 5m, or inf"
	errWaitNeg   = "invalid wait: want seconds >= 0 or inf"
	errWaitBig   = "invalid wait: too large (use inf)"
	errPID       = "invalid pid: not a process id"
	errMode      = "invalid mode: want shared or exclusive"
	errLimit     = "invalid limit: want a number from 1 to 1000000"
	errTTLSyn    = "invalid ttl: want seconds or a duration like 2h"
	errTTLInf    = "invalid ttl: must be finite (at most 366 days)"
	errTTLBig    = "invalid ttl: too large (at most 366 days)"
	errTTLSmall  = "invalid ttl: too small (at least 1ms)"
	errTTLNeg    = "invalid ttl: must not be negative"
	errHoldInf   = "invalid max-hold: must be finite (at most 366 days)"
	errHoldSmall = "invalid max-hold: too small (at least 1ms)"
	errHoldBig   = "invalid max-hold: too large (at most 366 days)"
	errLease     = "invalid lease: want 32 lowercase hex digits"

	// testLease is a lease id as NewLeaseID writes one.
	testLease = "0123456789abcdef0123456789abcdef"
)

// reqCases covers every legacy form of CONTRACT §1.1, the extension keys of
// §1.2 and the malformed lines. The fuzzers start from these lines too.
var reqCases = []reqCase{
	// Legacy lock, exactly as tcpnetlock's LockClient and nc users send it.
	{line: "lock,name:x", want: Request{Action: ActLock, Name: "x", HasName: true}},
	{line: "lock,name:x\n", want: Request{Action: ActLock, Name: "x", HasName: true}},
	{line: "lock,name:x\r\n", want: Request{Action: ActLock, Name: "x", HasName: true}},
	{line: "lock,name:x,client-id:y", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "y"}},
	{line: "lock,name:x,client-id:y\r\n", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "y"}},
	{line: "lock,client-id:y,name:x", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "y"}},
	{line: " lock , name : x ", want: Request{Action: ActLock, Name: "x", HasName: true}},
	{line: " lock , name : x , client-id : y \r\n", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "y"}},
	{line: "\tlock\t,\tname\t:\tx\t\n", want: Request{Action: ActLock, Name: "x", HasName: true}},
	{line: "lock,name:x\r", want: Request{Action: ActLock, Name: "x", HasName: true}},
	{line: "lock,name:\u00a0x\u00a0", want: Request{Action: ActLock, Name: "x", HasName: true}}, // unicode.IsSpace, like Python's str.strip
	{line: "lock", want: Request{Action: ActLock}},
	{line: "lock,name:", want: Request{Action: ActLock, HasName: true}},
	{line: "lock,name", want: Request{Action: ActLock, HasName: true}}, // a key without ':' has the empty value
	{line: "lock,name:x,client-id", want: Request{Action: ActLock, Name: "x", HasName: true}},
	{line: "lock,name:x,client-id:a:b", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a:b"}},
	{line: "lock,name:a:b", want: Request{Action: ActLock, Name: "a:b", HasName: true}},
	{line: "lock,name:x,name:y", want: Request{Action: ActLock, Name: "y", HasName: true}},
	{line: "lock,name:x,name:", want: Request{Action: ActLock, Name: "", HasName: true}},
	{line: "lock,name:x,client-id:a,client-id:b", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "b"}},
	{line: "lock,name:x,foo:bar", want: Request{Action: ActLock, Name: "x", HasName: true}},  // unknown key ignored
	{line: "lock,name:x,foo", want: Request{Action: ActLock, Name: "x", HasName: true}},      // unknown key without ':'
	{line: "lock,name:x,Name:y", want: Request{Action: ActLock, Name: "x", HasName: true}},   // keys are case-sensitive too
	{line: "lock,name:x,WAIT:abc", want: Request{Action: ActLock, Name: "x", HasName: true}}, // not the wait key: ignored
	{line: "lock,name:contains%invalid%chars", want: Request{Action: ActLock, Name: "contains%invalid%chars", HasName: true}},
	{line: "lock,name:.starts-with-dot", want: Request{Action: ActLock, Name: ".starts-with-dot", HasName: true}},
	{line: "lock,name:has space", want: Request{Action: ActLock, Name: "has space", HasName: true}}, // ValidName refuses it later
	// Names are kept as sent, never clipped or cleaned: ValidName refuses them,
	// and a 256-byte name must not become a valid 255-byte one.
	{line: "lock,name:" + strings.Repeat("n", 256), want: Request{Action: ActLock, Name: strings.Repeat("n", 256), HasName: true}},
	{line: "lock,name:a\x01\xffb", want: Request{Action: ActLock, Name: "a\x01\xffb", HasName: true}},

	// The other legacy actions.
	{line: ".ping", want: Request{Action: ActPing}},
	{line: ".ping\n", want: Request{Action: ActPing}},
	{line: ".ping\r\n", want: Request{Action: ActPing}},
	{line: " .ping ", want: Request{Action: ActPing}},
	{line: ".ping,name:x", want: Request{Action: ActPing, Name: "x", HasName: true}},
	{line: ".stats\n", want: Request{Action: ActStats}},
	{line: ".keepalive\n", want: Request{Action: ActKeepalive}},
	{line: "release\n", want: Request{Action: ActRelease}},
	{line: "release,name:x\n", want: Request{Action: ActRelease, Name: "x", HasName: true}},
	{line: ".server-shutdown\n", want: Request{Action: ActShutdown}},

	// Unknown actions and case-sensitivity: bad-action, not bad-request.
	{line: "unlock,name:x", want: Request{Action: ActUnknown, Name: "x", HasName: true}},
	{line: "LOCK,name:x", want: Request{Action: ActUnknown, Name: "x", HasName: true}},
	{line: "Lock,name:x", want: Request{Action: ActUnknown, Name: "x", HasName: true}},
	{line: ".PING", want: Request{Action: ActUnknown}},
	{line: "ping", want: Request{Action: ActUnknown}},
	{line: ".", want: Request{Action: ActUnknown}},
	{line: "lo ck", want: Request{Action: ActUnknown}},
	{line: "lock:x", want: Request{Action: ActUnknown}},
	{line: "\xff", want: Request{Action: ActUnknown}},

	// tnl's own actions.
	{line: ".session\n", want: Request{Action: ActSession}},
	{line: ".session,client-id:c,pid:42,host:h\n", want: Request{Action: ActSession, ClientID: "c", PID: 42, Host: "h", Ext: true}},
	{line: ".holders\n", want: Request{Action: ActHolders}},
	{line: ".holders,name:x\n", want: Request{Action: ActHolders, Name: "x", HasName: true}},
	{line: ".quit\n", want: Request{Action: ActQuit}},
	{line: ".break,name:x,auth:admin-token\n", want: Request{Action: ActBreak, Name: "x", HasName: true, Auth: "admin-token"}},
	{line: ".server-shutdown,auth:admin-token\n", want: Request{Action: ActShutdown, Auth: "admin-token"}},

	// The shared secret: kept as sent (trimmed, ':' allowed, last wins), and
	// not an extension key: a legacy lock with a secret still gets legacy answers.
	{line: "lock,name:x,auth:s3cret", want: Request{Action: ActLock, Name: "x", HasName: true, Auth: "s3cret"}},
	{line: "lock,name:x, auth : a:b ", want: Request{Action: ActLock, Name: "x", HasName: true, Auth: "a:b"}},
	{line: "lock,name:x,auth:one,auth:two", want: Request{Action: ActLock, Name: "x", HasName: true, Auth: "two"}},
	{line: "lock,name:x,auth", want: Request{Action: ActLock, Name: "x", HasName: true}},
	{line: "lock,name:x,Auth:s", want: Request{Action: ActLock, Name: "x", HasName: true}},

	// Malformed lines: bad-request.
	{line: "", wantErr: errMalformed},
	{line: "\n", wantErr: errMalformed},
	{line: "\r\n", wantErr: errMalformed},
	{line: "   ", wantErr: errMalformed},
	{line: " \t \r\n", wantErr: errMalformed},
	{line: ",", wantErr: errMalformed},
	{line: ",name:x", wantErr: errMalformed},
	{line: " ,name:x", wantErr: errMalformed},
	{line: "lock,", wantErr: errMalformed},
	{line: "lock,\n", wantErr: errMalformed},
	{line: "lock,name:x,", wantErr: errMalformed},
	{line: "lock,name:x,\r\n", wantErr: errMalformed},
	{line: "lock,name:x, ", wantErr: errMalformed},
	{line: "lock,,name:x", wantErr: errMalformed},
	{line: "lock,:x", wantErr: errMalformed},
	{line: "lock, :x", wantErr: errMalformed},
	{line: "lock,name:x,:y", wantErr: errMalformed},
	{line: ".ping,", wantErr: errMalformed},
	{line: "lock,wait:abc,", wantErr: errMalformed}, // malformed wins over a bad value
	{line: "lock\n\n", wantErr: errMalformed},       // two lines are not one request
	{line: "lock,name:a\nb", wantErr: errMalformed}, // a newline inside the line
	{line: "lock,name:a\nb\n", wantErr: errMalformed},

	// Extension keys set Ext; legacy keys (name, client-id) and unknown keys don't.
	{line: "lock,name:x,wait:5", want: Request{Action: ActLock, Name: "x", HasName: true, Wait: 5 * time.Second, Ext: true}},
	{line: "lock,name:x,wait:0", want: Request{Action: ActLock, Name: "x", HasName: true, Ext: true}},
	{line: "lock,name:x,wait:2.5", want: Request{Action: ActLock, Name: "x", HasName: true, Wait: 2500 * time.Millisecond, Ext: true}},
	{line: "lock,name:x,wait:250ms", want: Request{Action: ActLock, Name: "x", HasName: true, Wait: 250 * time.Millisecond, Ext: true}},
	{line: "lock,name:x,wait:5m", want: Request{Action: ActLock, Name: "x", HasName: true, Wait: 5 * time.Minute, Ext: true}},
	{line: "lock,name:x,wait:inf", want: Request{Action: ActLock, Name: "x", HasName: true, Wait: WaitForever, Ext: true}},
	{line: "lock,name:x,wait: 5 ", want: Request{Action: ActLock, Name: "x", HasName: true, Wait: 5 * time.Second, Ext: true}},
	{line: "lock,name:x,mode:shared", want: Request{Action: ActLock, Name: "x", HasName: true, Mode: Shared, Ext: true}},
	{line: "lock,name:x,mode:exclusive", want: Request{Action: ActLock, Name: "x", HasName: true, Mode: Exclusive, Ext: true}},
	{line: "lock,name:x,limit:3", want: Request{Action: ActLock, Name: "x", HasName: true, Limit: 3, Ext: true}},
	{line: "lock,name:x,limit:1", want: Request{Action: ActLock, Name: "x", HasName: true, Limit: 1, Ext: true}},
	{line: "lock,name:x,limit:1000000", want: Request{Action: ActLock, Name: "x", HasName: true, Limit: MaxLimit, Ext: true}},
	{line: "lock,name:x,pid:123", want: Request{Action: ActLock, Name: "x", HasName: true, PID: 123, Ext: true}},
	{line: "lock,name:x,pid:0", want: Request{Action: ActLock, Name: "x", HasName: true, Ext: true}},
	{line: "lock,name:x,pid:2147483647", want: Request{Action: ActLock, Name: "x", HasName: true, PID: math.MaxInt32, Ext: true}},
	{line: "lock,name:x,host:h1", want: Request{Action: ActLock, Name: "x", HasName: true, Host: "h1", Ext: true}},
	{line: "lock,name:x,host", want: Request{Action: ActLock, Name: "x", HasName: true, Ext: true}},
	{line: "lock,name:build-42,wait:5,pid:123", want: Request{Action: ActLock, Name: "build-42", HasName: true, Wait: 5 * time.Second, PID: 123, Ext: true}},
	{line: "lock,name:x,client-id:c,wait:1,mode:shared,limit:4,pid:7,host:h\n", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "c", Wait: time.Second, Mode: Shared, Limit: 4, PID: 7, Host: "h", Ext: true}},

	// Repeated keys: the last wins, also over an earlier bad value.
	{line: "lock,name:x,wait:abc,wait:5", want: Request{Action: ActLock, Name: "x", HasName: true, Wait: 5 * time.Second, Ext: true}},
	{line: "lock,name:x,wait:5,wait:abc", wantErr: errWaitSyn},
	{line: "lock,name:x,wait:5,wait:7", want: Request{Action: ActLock, Name: "x", HasName: true, Wait: 7 * time.Second, Ext: true}},
	{line: "lock,name:x,pid:x,pid:9", want: Request{Action: ActLock, Name: "x", HasName: true, PID: 9, Ext: true}},
	{line: "lock,name:x,pid:9,pid:x", wantErr: errPID},
	{line: "lock,name:x,mode:bad,mode:shared", want: Request{Action: ActLock, Name: "x", HasName: true, Mode: Shared, Ext: true}},
	{line: "lock,name:x,mode:shared,mode:exclusive", want: Request{Action: ActLock, Name: "x", HasName: true, Mode: Exclusive, Ext: true}},
	{line: "lock,name:x,limit:0,limit:2", want: Request{Action: ActLock, Name: "x", HasName: true, Limit: 2, Ext: true}},
	{line: "lock,name:x,limit:2,limit:0", wantErr: errLimit},

	// Bad extension values: err,invalid KEY: REASON.
	{line: "lock,name:x,wait:abc", wantErr: errWaitSyn},
	{line: "lock,name:x,wait:", wantErr: "invalid wait: empty"},
	{line: "lock,name:x,wait", wantErr: "invalid wait: empty"},
	{line: "lock,name:x,wait:-1", wantErr: errWaitNeg},
	{line: "lock,name:x,wait:NaN", wantErr: errWaitSyn},
	{line: "lock,name:x,wait:1e3", wantErr: errWaitSyn}, // decimal only: tnl.sh and the commands read the same spellings
	{line: "lock,name:x,wait:1000000001", wantErr: errWaitBig},
	{line: "lock,name:x,wait:1000000h", wantErr: errWaitBig},
	{line: "lock,name:x,pid:abc", wantErr: errPID},
	{line: "lock,name:x,pid:-1", wantErr: errPID},
	{line: "lock,name:x,pid:+1", wantErr: errPID},
	{line: "lock,name:x,pid:", wantErr: errPID},
	{line: "lock,name:x,pid:2147483648", wantErr: errPID},
	{line: "lock,name:x,mode:Shared", wantErr: errMode},
	{line: "lock,name:x,mode:", wantErr: errMode},
	{line: "lock,name:x,mode:read", wantErr: errMode},
	{line: "lock,name:x,limit:0", wantErr: errLimit},
	{line: "lock,name:x,limit:-1", wantErr: errLimit},
	{line: "lock,name:x,limit:1000001", wantErr: errLimit},
	{line: "lock,name:x,limit:4294967296", wantErr: errLimit},
	{line: "lock,name:x,limit:many", wantErr: errLimit},
	// Several bad values: the order is pid, wait, mode, limit, whatever the line order.
	{line: "lock,limit:0,mode:x,wait:x,pid:x", wantErr: errPID},
	{line: "lock,limit:0,mode:x,wait:x", wantErr: errWaitSyn},
	{line: "lock,limit:0,mode:x", wantErr: errMode},

	// client-id and host are clipped: control characters and invalid UTF-8
	// become '?', at most 255 bytes.
	{line: "lock,name:x,client-id:a\x01b", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?b"}},
	{line: "lock,name:x,client-id:a\tb", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?b"}},
	{line: "lock,name:x,client-id:a\rb", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?b"}},
	{line: "lock,name:x,client-id:a\x7fb", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?b"}},
	{line: "lock,name:x,client-id:a\x00b", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?b"}},
	{line: "lock,name:x,client-id:a\x1b[31mb", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?[31mb"}},
	{line: "lock,name:x,client-id:a\u009b31mb", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?31mb"}}, // C1 CSI
	{line: "lock,name:x,client-id:a\u0085b", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?b"}},       // C1 NEL
	{line: "lock,name:x,client-id:a\xffb", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?b"}},
	{line: "lock,name:x,client-id:a\xc3b", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a?b"}},
	{line: "lock,name:x,client-id:a\xed\xa0\x80b", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a???b"}}, // surrogate
	{line: "lock,name:x,client-id:é☃\U0001F512", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "é☃\U0001F512"}},
	{line: "lock,name:x,client-id:a\uFFFDb", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "a\uFFFDb"}},
	{line: "lock,name:x,client-id:\x01\uFFFD", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: "?\uFFFD"}},
	{line: "lock,name:x,client-id:" + strings.Repeat("a", 300), want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: strings.Repeat("a", 255)}},
	{line: "lock,name:x,client-id:" + strings.Repeat("a", 255), want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: strings.Repeat("a", 255)}},
	{line: "lock,name:x,client-id:" + strings.Repeat("a", 254) + "é", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: strings.Repeat("a", 254) + "?"}},
	{line: "lock,name:x,client-id:" + strings.Repeat("a", 253) + "é", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: strings.Repeat("a", 253) + "é"}},
	{line: "lock,name:x,client-id:" + strings.Repeat("a", 300) + "\x01", want: Request{Action: ActLock, Name: "x", HasName: true, ClientID: strings.Repeat("a", 255)}},
	{line: "lock,name:x,host:h\x01\xff", want: Request{Action: ActLock, Name: "x", HasName: true, Host: "h??", Ext: true}},
	{line: "lock,name:x,host:" + strings.Repeat("h", 256), want: Request{Action: ActLock, Name: "x", HasName: true, Host: strings.Repeat("h", 255), Ext: true}},

	// Leases and maximum hold: ttl, max-hold and lease are extension keys.
	{line: "lock,name:x,ttl:7200\n", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: 2 * time.Hour, Ext: true}},
	{line: "lock,name:x,ttl:2h", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: 2 * time.Hour, Ext: true}},
	{line: "lock,name:x,ttl:1.5", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: 1500 * time.Millisecond, Ext: true}},
	{line: "lock,name:x,ttl:0.001", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: time.Millisecond, Ext: true}},
	{line: "lock,name:x,ttl:1ms", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: time.Millisecond, Ext: true}},
	{line: "lock,name:x,ttl:31622400", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: MaxTTL, Ext: true}},
	{line: "lock,name:x,ttl:8784h", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: MaxTTL, Ext: true}},
	{line: "lock,name:x,ttl: 60 ", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: time.Minute, Ext: true}},
	{line: "lock,name:x,max-hold:30", want: Request{Action: ActLock, Name: "x", HasName: true, MaxHold: 30 * time.Second, Ext: true}},
	{line: "lock,name:x,max-hold:1h,ttl:10m", want: Request{Action: ActLock, Name: "x", HasName: true, MaxHold: time.Hour, TTL: 10 * time.Minute, Ext: true}},
	{line: "lock,name:x,ttl:7200,wait:5,mode:shared,max-hold:86400,client-id:c,pid:7,host:h\n",
		want: Request{Action: ActLock, Name: "x", HasName: true, TTL: 2 * time.Hour, Wait: 5 * time.Second, Mode: Shared,
			MaxHold: 24 * time.Hour, ClientID: "c", PID: 7, Host: "h", Ext: true}},
	{line: ".renew,lease:" + testLease + "\n", want: Request{Action: ActRenew, Lease: testLease, Ext: true}},
	{line: ".renew,lease:" + testLease + ",ttl:3600\n", want: Request{Action: ActRenew, Lease: testLease, TTL: time.Hour, Ext: true}},
	{line: ".renew, lease : " + testLease + " \r\n", want: Request{Action: ActRenew, Lease: testLease, Ext: true}},
	{line: ".release,lease:" + testLease + "\n", want: Request{Action: ActReleaseLease, Lease: testLease, Ext: true}},
	{line: ".is-held,lease:" + testLease + "\n", want: Request{Action: ActIsHeld, Lease: testLease, Ext: true}},
	{line: ".renew\n", want: Request{Action: ActRenew}}, // no id: the server says what is missing
	{line: ".release\n", want: Request{Action: ActReleaseLease}},
	{line: ".is-held,name:x\n", want: Request{Action: ActIsHeld, Name: "x", HasName: true}},
	{line: "release,lease:" + testLease + "\n", want: Request{Action: ActRelease, Lease: testLease, Ext: true}}, // legacy release: the server's to refuse
	{line: ".Renew,lease:" + testLease, want: Request{Action: ActUnknown, Lease: testLease, Ext: true}},
	{line: "renew\n", want: Request{Action: ActUnknown}},
	{line: ".is_held\n", want: Request{Action: ActUnknown}},
	{line: "lock,name:x,TTL:5", want: Request{Action: ActLock, Name: "x", HasName: true}}, // not the ttl key: ignored
	{line: "lock,name:x,ttl:abc,ttl:5", want: Request{Action: ActLock, Name: "x", HasName: true, TTL: 5 * time.Second, Ext: true}},
	{line: ".renew,lease:bad,lease:" + testLease, want: Request{Action: ActRenew, Lease: testLease, Ext: true}},
	{line: "lock,name:x,ttl:5,ttl:abc", wantErr: errTTLSyn},
	{line: ".renew,lease:" + testLease + ",lease:bad", wantErr: errLease},
	{line: "lock,name:x,ttl:inf", wantErr: errTTLInf},
	{line: "lock,name:x,ttl:infinity", wantErr: errTTLInf},
	{line: "lock,name:x,ttl:forever", wantErr: errTTLInf},
	{line: "lock,name:x,ttl:0", wantErr: errTTLSmall},
	{line: "lock,name:x,ttl:0.0009", wantErr: errTTLSmall},
	{line: "lock,name:x,ttl:999us", wantErr: errTTLSmall},
	{line: "lock,name:x,ttl:31622400.000000001", wantErr: errTTLBig},
	{line: "lock,name:x,ttl:8785h", wantErr: errTTLBig},
	{line: "lock,name:x,ttl:99999999999999999999", wantErr: errTTLBig},
	{line: "lock,name:x,ttl:-5", wantErr: errTTLNeg},
	{line: "lock,name:x,ttl:5x", wantErr: errTTLSyn},
	{line: "lock,name:x,ttl:1e3", wantErr: errTTLSyn},
	{line: "lock,name:x,ttl:", wantErr: "invalid ttl: empty"},
	{line: "lock,name:x,ttl", wantErr: "invalid ttl: empty"},
	{line: "lock,name:x,max-hold:inf", wantErr: errHoldInf},
	{line: "lock,name:x,max-hold:0", wantErr: errHoldSmall},
	{line: "lock,name:x,max-hold:367d", wantErr: "invalid max-hold: want seconds or a duration like 2h"},
	{line: "lock,name:x,max-hold:9000h", wantErr: errHoldBig},
	{line: ".renew,lease:", wantErr: errLease},
	{line: ".renew,lease", wantErr: errLease},
	{line: ".renew,lease:" + strings.ToUpper(testLease), wantErr: errLease},
	{line: ".renew,lease:" + testLease[:31], wantErr: errLease},
	{line: ".renew,lease:" + testLease + "0", wantErr: errLease},
	{line: ".renew,lease:" + testLease[:31] + "g", wantErr: errLease},
	{line: ".renew,lease:" + testLease + ",ttl:0", wantErr: errTTLSmall},
	// Several bad values: pid, wait, mode, limit, ttl, max-hold, lease.
	{line: ".renew,lease:x,max-hold:0,ttl:0,limit:0", wantErr: errLimit},
	{line: ".renew,lease:x,max-hold:0,ttl:0", wantErr: errTTLSmall},
	{line: ".renew,lease:x,max-hold:0", wantErr: errHoldSmall},
}

func TestParseRequest(t *testing.T) {
	for _, tc := range reqCases {
		got, err := ParseRequest([]byte(tc.line))
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseRequest(%q) = %+v, %v; want error %q", tc.line, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRequest(%q)\n got %+v, %v\nwant %+v, nil", tc.line, got, err, tc.want)
		}
	}
}

// TestParseRequestErrorTypes checks that callers can tell the two kinds of
// refusal apart with errors.Is and errors.As: the server answers the first
// "bad-request" and the second "err,invalid KEY: REASON".
func TestParseRequestErrorTypes(t *testing.T) {
	for _, tc := range reqCases {
		if tc.wantErr == "" {
			continue
		}
		_, err := ParseRequest([]byte(tc.line))
		var ve *ValueError
		switch {
		case tc.wantErr == errMalformed:
			if err != ErrMalformed {
				t.Errorf("ParseRequest(%q) = %v; want ErrMalformed itself", tc.line, err)
			}
		case !errors.As(err, &ve):
			t.Errorf("ParseRequest(%q) = %T %v; want a *ValueError", tc.line, err, err)
		case "invalid "+ve.Key+": "+ve.Reason != tc.wantErr:
			t.Errorf("ParseRequest(%q): ValueError{%q, %q}; want %q", tc.line, ve.Key, ve.Reason, tc.wantErr)
		}
	}
}

// TestParseRequestCopies checks the doc's promise that a Request does not
// alias the buffer it was parsed from: the server reuses its read buffer.
func TestParseRequestCopies(t *testing.T) {
	buf := []byte("lock,name:abc,client-id:def,host:ghi,auth:jkl\n")
	r, err := ParseRequest(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'Z'
	}
	if r.Name != "abc" || r.ClientID != "def" || r.Host != "ghi" || r.Auth != "jkl" {
		t.Errorf("after overwriting the buffer: %+v", r)
	}
}

// TestParseRequestAllocs checks "allocates only for the strings it keeps".
func TestParseRequestAllocs(t *testing.T) {
	for _, tc := range []struct {
		line string
		want float64
	}{
		{".ping\n", 0},
		{".keepalive\n", 0},
		{"lock,name:build-42,wait:5,pid:123\n", 1}, // the name
		{"lock,name:build-42,wait:2.5,mode:shared,limit:3\n", 1},
		{"lock,name:build-42,wait:inf\n", 1},
		{"lock,name:build-42,client-id:me@host,pid:1,host:hh\n", 3},
		{"lock,name:build-42,client-id:a\x01b\n", 2}, // clip's scratch buffer stays on the stack
		{"lock,name:x,client-id:y\n", 0},             // one-byte strings are static in Go
	} {
		line := []byte(tc.line)
		got := testing.AllocsPerRun(100, func() { _, _ = ParseRequest(line) })
		if got != tc.want {
			t.Errorf("ParseRequest(%q): %v allocations; want %v", tc.line, got, tc.want)
		}
	}
}

func TestActionString(t *testing.T) {
	want := map[Action]string{
		ActUnknown: "", ActLock: "lock", ActRelease: "release", ActKeepalive: ".keepalive",
		ActPing: ".ping", ActStats: ".stats", ActShutdown: ".server-shutdown",
		ActSession: ".session", ActHolders: ".holders", ActQuit: ".quit", ActBreak: ".break",
		ActRenew: ".renew", ActReleaseLease: ".release", ActIsHeld: ".is-held",
		Action(len(actionNames)): "", 255: "",
	}
	for a, s := range actionNames {
		if w, ok := want[Action(a)]; !ok || w != s {
			t.Errorf("action %d %q is not in this test", a, s)
		}
	}
	for a, s := range want {
		if got := a.String(); got != s {
			t.Errorf("Action(%d).String() = %q; want %q", a, got, s)
		}
		if a == ActUnknown || s == "" {
			continue
		}
		// Every action parses back from its spelling.
		if r, err := ParseRequest([]byte(s + "\n")); err != nil || r.Action != a {
			t.Errorf("ParseRequest(%q) = %v, %v; want action %d", s, r.Action, err, a)
		}
	}
}

func TestModeString(t *testing.T) {
	if Exclusive.String() != "exclusive" || Shared.String() != "shared" || Mode(9).String() != "exclusive" {
		t.Errorf("Mode strings: %q %q %q", Exclusive, Shared, Mode(9))
	}
}

var waitCases = []struct {
	in      string
	want    time.Duration
	wantErr string
}{
	{in: "0", want: 0},
	{in: "0.0", want: 0},
	{in: "0s", want: 0},
	{in: "5", want: 5 * time.Second},
	{in: "2.5", want: 2500 * time.Millisecond},
	{in: "0.25", want: 250 * time.Millisecond},
	{in: ".5", want: 500 * time.Millisecond},
	{in: "0.1", want: 100 * time.Millisecond},
	{in: "0.3", want: 300 * time.Millisecond},
	{in: "1.1", want: 1100 * time.Millisecond},
	{in: "0.000000001", want: 1},
	{in: "1.000000007", want: time.Second + 7},
	{in: "123.456789012", want: 123456789012},
	{in: "1000000000", want: 1e9 * time.Second},
	{in: "250ms", want: 250 * time.Millisecond},
	{in: "5m", want: 5 * time.Minute},
	{in: "1h30m", want: 90 * time.Minute},
	{in: "1.5h", want: 90 * time.Minute},
	{in: "277777h", want: 277777 * time.Hour}, // just under 1e9 seconds
	{in: "inf", want: WaitForever},
	{in: "infinity", want: WaitForever},
	{in: "forever", want: WaitForever},

	{in: "", wantErr: "empty"},
	{in: "-1", wantErr: "want seconds >= 0 or inf"},
	{in: "-0.5", wantErr: "want seconds >= 0 or inf"},
	{in: "-1s", wantErr: "want seconds >= 0 or inf"},
	{in: "-inf", wantErr: "want seconds >= 0 or inf"},
	{in: "-0", wantErr: "want seconds >= 0 or inf"},
	{in: "NaN", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "nan", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "Inf", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "+Inf", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "INF", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "+5", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "1e3", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "1000000001", wantErr: "too large (use inf)"},
	{in: "3000000h", wantErr: "too large (use inf)"},
	{in: "99999999999999999999", wantErr: "too large (use inf)"},
	{in: "277778h", wantErr: "too large (use inf)"},
	{in: "1000000h", wantErr: "too large (use inf)"},
	{in: "2562047h47m16.854775807s", wantErr: "too large (use inf)"},
	{in: "1e400", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "abc", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "5x", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "5 s", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: " 5", wantErr: "want seconds, a duration like 5m, or inf"}, // ParseRequest trims; ParseWait does not
	{in: "5M", wantErr: "want seconds, a duration like 5m, or inf"},
	{in: "Forever", wantErr: "want seconds, a duration like 5m, or inf"},
}

func TestParseWait(t *testing.T) {
	for _, tc := range waitCases {
		got, err := ParseWait(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseWait(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseWait(%q) = %v (%d), %v; want %v (%d)", tc.in, got, int64(got), err, tc.want, int64(tc.want))
		}
	}
}

func TestFormatWait(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0"},
		{1, "0.000000001"},
		{time.Millisecond, "0.001"},
		{250 * time.Millisecond, "0.25"},
		{time.Second, "1"},
		{2500 * time.Millisecond, "2.5"},
		{time.Second + 7, "1.000000007"},
		{90 * time.Minute, "5400"},
		{1e9 * time.Second, "1000000000"},
		{WaitForever, "inf"},
	} {
		if got := FormatWait(tc.in); got != tc.want {
			t.Errorf("FormatWait(%v) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// exactWaitBound is the largest wait that survives FormatWait -> ParseWait to
// the nanosecond: both go through a float64 of seconds, exact to the
// nanosecond below 2^22 s (48 days). Longer waits come back within a microsecond.
const exactWaitBound = (1 << 22) * time.Second

// TestWaitRoundTrip: what the client formats, the server reads back.
func TestWaitRoundTrip(t *testing.T) {
	ds := []time.Duration{0, 1, 7, 999, time.Microsecond, time.Millisecond, 100 * time.Millisecond,
		300 * time.Millisecond, time.Second + 7, 1000000007, 123456789, 5 * time.Minute,
		30 * 24 * time.Hour, exactWaitBound - 1, exactWaitBound, 1e9 * time.Second, WaitForever}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ds = append(ds, time.Duration(rng.Int64N(int64(exactWaitBound))))
		ds = append(ds, time.Duration(rng.Int64N(int64(time.Minute))))
		ds = append(ds, time.Duration(rng.Int64N(int64(1e9*time.Second)+1)))
	}
	for _, d := range ds {
		s := FormatWait(d)
		got, err := ParseWait(s)
		if err != nil {
			t.Fatalf("ParseWait(FormatWait(%d) = %q): %v", d, s, err)
		}
		if d <= exactWaitBound || d == WaitForever {
			if got != d {
				t.Fatalf("ParseWait(FormatWait(%d) = %q) = %d", d, s, got)
			}
		} else if diff := got - d; diff < -time.Microsecond || diff > time.Microsecond {
			t.Fatalf("ParseWait(FormatWait(%d) = %q) = %d: off by %v", d, s, got, diff)
		}
	}
	// And every accepted wait string formats to something the server accepts.
	for _, tc := range waitCases {
		if d, err := ParseWait(tc.in); err == nil {
			if _, err := ParseWait(FormatWait(d)); err != nil {
				t.Errorf("ParseWait(%q) = %v, but FormatWait gives %q: %v", tc.in, d, FormatWait(d), err)
			}
		}
	}
}

var nameCases = []struct {
	name string
	ok   bool
}{
	{"a", true},
	{"Z", true},
	{"0", true},
	{"_", true},
	{"-", true},
	{"build-42", true},
	{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", true},
	{"-leading-dash", true},
	{"_leading_underscore", true},
	{"a.b", true},
	{"a/b", true},
	{"a:b", true},
	{"a@b", true},
	{"x.", true},
	{"x/", true},
	{"x:", true},
	{"x@", true},
	{"host.example.com:/var/lib@v1", true},
	{strings.Repeat("a", 255), true},
	{strings.Repeat("a", 254) + ".", true},

	{"", false},
	{strings.Repeat("a", 256), false},
	{strings.Repeat("a", 255) + ".", false},
	{" contains space", false},
	{"contains space", false},
	{"trailing ", false},
	{"contains%invalid%chars", false},
	{".starts-with-dot", false},
	{"/starts-with-slash", false},
	{":starts-with-colon", false},
	{"@starts-with-at", false},
	{".", false},
	{"a,b", false},
	{"a\n", false},
	{"a\r", false},
	{"a\t", false},
	{"a\x00", false},
	{"a+b", false},
	{"a*b", false},
	{"a#b", false},
	{"a~b", false},
	{"a\\b", false},
	{"a=b", false},
	{"é", false},
	{"caf\u00e9", false},
	{"\xff", false},
	{"a\xff", false},
	{"a\xc3", false},
}

func TestValidName(t *testing.T) {
	for _, tc := range nameCases {
		if got := ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v; want %v", tc.name, got, tc.ok)
		}
	}
}

// TestValidNameBytes checks every single byte, first and later, against the
// contract's set: [A-Za-z0-9_-] anywhere, ".", "/", ":", "@" after the first.
func TestValidNameBytes(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		word := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-'
		later := word || b == '.' || b == '/' || b == ':' || b == '@'
		if got := ValidName(string(b)); got != word {
			t.Errorf("ValidName(%q) = %v; want %v", string(b), got, word)
		}
		if got := ValidName("a" + string(b)); got != later {
			t.Errorf("ValidName(%q) = %v; want %v", "a"+string(b), got, later)
		}
	}
}

func isTrimmed(s string) bool { return strings.TrimFunc(s, unicode.IsSpace) == s }

func FuzzParseRequest(f *testing.F) {
	for _, tc := range reqCases {
		f.Add([]byte(tc.line))
	}
	for _, tc := range nameCases {
		f.Add([]byte("lock,name:" + tc.name + "\n"))
	}
	for _, tc := range waitCases {
		f.Add([]byte("lock,name:x,wait:" + tc.in + "\n"))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in := bytes.Clone(line)
		r, err := ParseRequest(line)
		if !bytes.Equal(in, line) {
			t.Fatalf("ParseRequest changed its input: %q -> %q", in, line)
		}
		if err != nil {
			var ve *ValueError
			switch {
			case err == ErrMalformed:
			case errors.As(err, &ve) && (ve.Key == "pid" || ve.Key == "wait" || ve.Key == "mode" || ve.Key == "limit" ||
				ve.Key == "ttl" || ve.Key == "max-hold" || ve.Key == "lease") && ve.Reason != "":
			default:
				t.Fatalf("ParseRequest(%q): unexpected error %T %v", line, err, err)
			}
			return
		}
		// Strings are copies.
		name, cid, host, auth, lease := strings.Clone(r.Name), strings.Clone(r.ClientID), strings.Clone(r.Host), strings.Clone(r.Auth), strings.Clone(r.Lease)
		for i := range line {
			line[i] = ','
		}
		if r.Name != name || r.ClientID != cid || r.Host != host || r.Auth != auth || r.Lease != lease {
			t.Fatalf("ParseRequest(%q): Request aliases its input", in)
		}
		copy(line, in)

		for _, s := range []string{r.Name, r.ClientID, r.Host, r.Auth} {
			if strings.ContainsAny(s, "\n,") {
				t.Fatalf("ParseRequest(%q): kept %q", in, s)
			}
		}
		if !isTrimmed(r.Name) || !isTrimmed(r.Auth) {
			t.Fatalf("ParseRequest(%q): name %q or auth %q not trimmed", in, r.Name, r.Auth)
		}
		for _, s := range []string{r.ClientID, r.Host} {
			if len(s) > maxInfoLen || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
				t.Fatalf("ParseRequest(%q): info string %q not clipped", in, s)
			}
		}
		if r.Action.String() == "" && r.Action != ActUnknown {
			t.Fatalf("ParseRequest(%q): action %d", in, r.Action)
		}
		if r.Wait < 0 || r.PID < 0 || r.PID > math.MaxInt32 || r.Limit < 0 || r.Limit > MaxLimit || (r.Mode != Exclusive && r.Mode != Shared) {
			t.Fatalf("ParseRequest(%q): out of range: %+v", in, r)
		}
		if r.TTL != 0 && (r.TTL < MinTTL || r.TTL > MaxTTL) || r.MaxHold != 0 && (r.MaxHold < MinTTL || r.MaxHold > MaxTTL) ||
			r.Lease != "" && !ValidLeaseID(r.Lease) {
			t.Fatalf("ParseRequest(%q): lease fields out of range: %+v", in, r)
		}
		if !r.Ext && (r.Wait != 0 || r.Mode != Exclusive || r.Limit != 0 || r.PID != 0 || r.Host != "" ||
			r.TTL != 0 || r.MaxHold != 0 || r.Lease != "") {
			t.Fatalf("ParseRequest(%q): extension fields without Ext: %+v", in, r)
		}
		if !r.HasName && r.Name != "" {
			t.Fatalf("ParseRequest(%q): name without HasName: %+v", in, r)
		}

		// The line ending does not matter.
		if !bytes.ContainsAny(in, "\n") {
			for _, eol := range []string{"\n", "\r\n"} {
				r2, err := ParseRequest(append(bytes.Clone(in), eol...))
				if err != nil || r2 != r {
					t.Fatalf("ParseRequest(%q) = %+v, but with %q: %+v, %v", in, r, eol, r2, err)
				}
			}
		}

		// A valid name survives every answer that carries it.
		if ValidName(r.Name) {
			for _, rep := range []struct {
				kind  Kind
				token uint64
				msg   string
			}{
				{KindOK, 0, ""}, {KindOK, 1<<64 - 1, ""}, {KindNotGranted, 0, ""}, {KindTimeout, 0, ""},
				{KindReleased, 0, ""}, {KindCancelled, 0, ""}, {KindErr, 0, "not held"}, {KindErr, 0, "x,y:z"},
			} {
				wire := AppendReply(nil, rep.kind, r.Name, rep.token, rep.msg)
				got, err := ParseReply(wire)
				if err != nil || got.Name != r.Name || got.Kind != rep.kind || got.Token != rep.token || got.Msg != rep.msg {
					t.Fatalf("name %q: ParseReply(%q) = %+v, %v", r.Name, wire, got, err)
				}
			}
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	line := []byte("lock,name:build-42,wait:5,pid:123\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := ParseRequest(line); err != nil {
			b.Fatal(err)
		}
	}
}
