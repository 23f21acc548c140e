package protocol

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Action is the verb of a request line.
type Action uint8

// The actions tnl knows. ActUnknown is any other word: the server answers it
// with "bad-action".
const (
	ActUnknown      Action = iota
	ActLock                // lock
	ActRelease             // release
	ActKeepalive           // .keepalive
	ActPing                // .ping
	ActStats               // .stats
	ActShutdown            // .server-shutdown (never honoured for a peer)
	ActSession             // .session
	ActHolders             // .holders
	ActQuit                // .quit
	ActBreak               // .break (operators: needs the admin token)
	ActRenew               // .renew,lease:ID[,ttl:S]
	ActReleaseLease        // .release,lease:ID (with a dot: legacy release is ActRelease)
	ActIsHeld              // .is-held,lease:ID
)

var actionNames = [...]string{
	ActUnknown:      "",
	ActLock:         "lock",
	ActRelease:      "release",
	ActKeepalive:    ".keepalive",
	ActPing:         ".ping",
	ActStats:        ".stats",
	ActShutdown:     ".server-shutdown",
	ActSession:      ".session",
	ActHolders:      ".holders",
	ActQuit:         ".quit",
	ActBreak:        ".break",
	ActRenew:        ".renew",
	ActReleaseLease: ".release",
	ActIsHeld:       ".is-held",
}

// String returns the wire spelling of a.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return ""
}

// Mode says whether a holder excludes everybody or shares with other readers.
type Mode uint8

// The lock modes.
const (
	Exclusive Mode = iota
	Shared
)

// String returns "exclusive" or "shared".
func (m Mode) String() string {
	if m == Shared {
		return "shared"
	}
	return "exclusive"
}

// WaitForever is the Wait of a request that waits without a time limit.
const WaitForever time.Duration = math.MaxInt64

// MaxNameLen is the longest lock name accepted, in bytes.
const MaxNameLen = 255

// MaxLimit is the largest semaphore size a request may ask for.
const MaxLimit = 1000000

// MaxWait is the longest finite wait (about 31 years): a longer one is taken
// for the typo it is, and refused (use inf). FormatWait of any wait up to it
// reads back exactly.
const MaxWait = 1e9 * time.Second

// MinTTL and MaxTTL bound a lease's TTL (ttl:) and a maximum hold
// (max-hold:). Both are finite: a lease nobody renews must end, and "no
// cap" is said by leaving max-hold out. 366 days lets a yearly job hold a
// lease over a leap year; anything longer is taken for a typo. Below a
// millisecond a lease would end before its answer arrives.
const (
	MinTTL = time.Millisecond
	MaxTTL = 366 * 24 * time.Hour
)

// maxInfoLen bounds the informational strings (client id, host) kept per holder.
const maxInfoLen = 255

// Request is one parsed request line. Strings are copies: a Request does not
// alias the buffer it was parsed from.
type Request struct {
	Action   Action
	Name     string // lock name, as sent (validate with ValidName)
	HasName  bool   // a name key was present
	ClientID string
	Host     string
	PID      int
	Wait     time.Duration // 0: try once; WaitForever: no limit
	Mode     Mode
	Limit    int // semaphore size; 0 when not given (means 1)
	// Auth is the shared secret, when the server asks for one. Send it
	// only over TLS or a trusted network.
	Auth string
	// TTL asks for a lease (ttl:) on a lock request, or a new TTL on
	// ActRenew; 0 when not given. MinTTL..MaxTTL when given.
	TTL time.Duration
	// MaxHold caps how long the lock may be held from its grant
	// (max-hold:); 0 when not given. MinTTL..MaxTTL when given.
	MaxHold time.Duration
	// Lease is the lease id of ActRenew, ActReleaseLease and ActIsHeld
	// (lease:). When given it is valid (ValidLeaseID). It is a secret:
	// never log it.
	Lease string
	// Ext is true when the request used any extension key. Only extension
	// requests get extension answers (a fencing token, for instance); a request
	// made only of legacy forms gets exactly tcpnetlock's answers.
	Ext bool
}

// ErrMalformed is returned for a line that breaks the grammar: empty action,
// empty key, trailing comma, blank line. The server answers "bad-request".
var ErrMalformed = errors.New("malformed request")

// ValueError is returned for a known key whose value cannot be used. The server
// answers "err,invalid KEY: REASON".
type ValueError struct {
	Key    string
	Reason string
}

func (e *ValueError) Error() string { return "invalid " + e.Key + ": " + e.Reason }

// ParseRequest parses one request line, with or without its line ending.
// It never panics and allocates only for the strings it keeps.
func ParseRequest(line []byte) (Request, error) {
	var r Request
	line = trimEOL(line)
	// A '\n' left inside is a second line: refused, so that no kept string
	// (a name echoed in a session answer, say) can carry a line break.
	if bytes.IndexByte(line, '\n') >= 0 {
		return r, ErrMalformed
	}
	field, rest, more := cut(line, ',')
	act := bytes.TrimFunc(field, unicode.IsSpace)
	if len(act) == 0 {
		return r, ErrMalformed
	}
	r.Action = lookupAction(act)
	// One slot per key that can be invalid: a repeated key's last value wins,
	// also over an earlier bad value.
	var verrs [numKeys]error
	for more {
		field, rest, more = cut(rest, ',')
		k, v, _ := cut(field, ':')
		k = bytes.TrimFunc(k, unicode.IsSpace)
		v = bytes.TrimFunc(v, unicode.IsSpace)
		if len(k) == 0 {
			return r, ErrMalformed
		}
		slot, err := r.setKey(k, v)
		verrs[slot] = err
	}
	for _, err := range verrs {
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

const (
	keyOther = iota
	keyPID
	keyWait
	keyMode
	keyLimit
	keyTTL
	keyMaxHold
	keyLease
	numKeys
)

func (r *Request) setKey(k, v []byte) (int, error) {
	switch string(k) {
	case "name":
		r.Name, r.HasName = string(v), true
	case "client-id":
		r.ClientID = clip(v)
	case "auth":
		r.Auth = string(v)
	case "host":
		r.Ext = true
		r.Host = clip(v)
	case "pid":
		r.Ext = true
		n, err := strconv.ParseUint(string(v), 10, 31)
		if err != nil {
			return keyPID, &ValueError{"pid", "not a process id"}
		}
		r.PID = int(n)
		return keyPID, nil
	case "wait":
		r.Ext = true
		d, err := ParseWait(string(v))
		if err != nil {
			return keyWait, &ValueError{"wait", err.Error()}
		}
		r.Wait = d
		return keyWait, nil
	case "mode":
		r.Ext = true
		switch string(v) {
		case "exclusive":
			r.Mode = Exclusive
		case "shared":
			r.Mode = Shared
		default:
			return keyMode, &ValueError{"mode", "want shared or exclusive"}
		}
		return keyMode, nil
	case "limit":
		r.Ext = true
		n, err := strconv.ParseUint(string(v), 10, 32)
		// The mode may come after the limit: the pair is checked by the
		// server, once the whole line is read.
		if err != nil || CheckLimit(Exclusive, int(n)) != nil {
			return keyLimit, &ValueError{"limit", ErrLimitRange.Error()}
		}
		r.Limit = int(n)
		return keyLimit, nil
	case "ttl":
		r.Ext = true
		d, err := parseSpan(string(v))
		if err != nil {
			return keyTTL, &ValueError{"ttl", err.Error()}
		}
		r.TTL = d
		return keyTTL, nil
	case "max-hold":
		r.Ext = true
		d, err := parseSpan(string(v))
		if err != nil {
			return keyMaxHold, &ValueError{"max-hold", err.Error()}
		}
		r.MaxHold = d
		return keyMaxHold, nil
	case "lease":
		r.Ext = true
		// Checked here, so that no id the server could never have made
		// reaches the lease table; the reason does not echo the secret.
		if !ValidLeaseID(string(v)) {
			r.Lease = ""
			return keyLease, &ValueError{"lease", "want " + strconv.Itoa(2*leaseIDBytes) + " lowercase hex digits"}
		}
		r.Lease = string(v)
		return keyLease, nil
	}
	return keyOther, nil
}

// ParseWait parses a wait value: "inf" (also "infinity", "forever"), or a
// span as ParseDuration takes it: decimal seconds ("5", "0.25") or a Go-style
// duration ("250ms", "5m"). A wait over MaxWait is refused.
func ParseWait(s string) (time.Duration, error) {
	switch s {
	case "inf", "infinity", "forever":
		return WaitForever, nil
	case "":
		return 0, errors.New("empty")
	}
	d, err := ParseDuration(s)
	switch {
	case errors.Is(err, ErrDurationNegative):
		return 0, errors.New("want seconds >= 0 or inf")
	case errors.Is(err, ErrDurationRange), err == nil && d > MaxWait:
		return 0, errors.New("too large (use inf)")
	case err != nil:
		return 0, errors.New("want seconds, a duration like 5m, or inf")
	}
	return d, nil
}

// parseSpan parses a ttl or max-hold value: a span as ParseDuration takes
// it, MinTTL to MaxTTL. No "inf": a lease must end, and no cap is said by
// leaving max-hold out.
func parseSpan(s string) (time.Duration, error) {
	switch s {
	case "inf", "infinity", "forever":
		return 0, errors.New("must be finite (at most 366 days)")
	case "":
		return 0, errors.New("empty")
	}
	d, err := ParseDuration(s)
	switch {
	case errors.Is(err, ErrDurationNegative):
		return 0, errors.New("must not be negative")
	case errors.Is(err, ErrDurationRange), err == nil && d > MaxTTL:
		return 0, errors.New("too large (at most 366 days)")
	case err != nil:
		return 0, errors.New("want seconds or a duration like 2h")
	case d < MinTTL:
		return 0, errors.New("too small (at least 1ms)")
	}
	return d, nil
}

// FormatWait is the inverse of ParseWait, in the form the server reads back.
func FormatWait(d time.Duration) string {
	return string(appendWait(nil, d))
}

// ValidName reports whether name may be used as a lock name: tcpnetlock's
// [A-Za-z0-9_-]+, plus '.', '/', ':' and '@' after the first byte, at most
// MaxNameLen bytes. Names are never normalised: a name is valid as sent or
// refused.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case i > 0 && (c == '.' || c == '/' || c == ':' || c == '@'):
		default:
			return false
		}
	}
	return true
}

func lookupAction(b []byte) Action {
	for a := ActLock; int(a) < len(actionNames); a++ {
		if string(b) == actionNames[a] {
			return a
		}
	}
	return ActUnknown
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func cut(b []byte, sep byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// clip keeps at most maxInfoLen bytes of valid UTF-8 without control
// characters: these strings are shown to people and written into JSON.
func clip(v []byte) string {
	if len(v) > maxInfoLen {
		v = v[:maxInfoLen]
	}
	ok := utf8.Valid(v)
	for i, c := range v {
		// 0xC2 0x80..0x9F is a C1 control (U+0080..U+009F), CSI among them.
		if c < 0x20 || c == 0x7f || c == 0xc2 && i+1 < len(v) && v[i+1] < 0xa0 {
			ok = false
			break
		}
	}
	if ok {
		return string(v)
	}
	out := make([]byte, 0, len(v))
	for len(v) > 0 {
		r, n := utf8.DecodeRune(v)
		v = v[n:]
		if r == utf8.RuneError && n == 1 || unicode.IsControl(r) {
			out = append(out, '?')
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}
