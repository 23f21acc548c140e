package protocol

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is the first word of an answer line.
type Kind uint8

// The answers a server gives.
const (
	KindUnknown      Kind = iota
	KindOK                // ok: granted
	KindNotGranted        // not-granted: held by someone else, no wait
	KindTimeout           // timeout: the wait ran out
	KindReleased          // released
	KindCancelled         // cancelled: a session's wait was withdrawn
	KindAlive             // alive: answer to .keepalive
	KindPong              // pong
	KindStats             // stats,{JSON}
	KindHolders           // holders,{JSON}
	KindSession           // session,dead-peer-timeout:S
	KindErr               // err,MESSAGE
	KindBadAction         // bad-action
	KindBadRequest        // bad-request
	KindBye               // bye: answer to .quit
	KindLost              // lost,name:N[,why:TEXT]: a session's lock was taken away
	KindShuttingDown      // shutting-down: answer to an admin's .server-shutdown
	KindRenewed           // renewed,name:N,token:T,ttl:S: answer to .renew
	KindHeld              // held,name:N,token:T,ttl:S: answer to .is-held
)

var kindNames = [...]string{
	KindUnknown:      "",
	KindOK:           "ok",
	KindNotGranted:   "not-granted",
	KindTimeout:      "timeout",
	KindReleased:     "released",
	KindCancelled:    "cancelled",
	KindAlive:        "alive",
	KindPong:         "pong",
	KindStats:        "stats",
	KindHolders:      "holders",
	KindSession:      "session",
	KindErr:          "err",
	KindBadAction:    "bad-action",
	KindBadRequest:   "bad-request",
	KindBye:          "bye",
	KindLost:         "lost",
	KindShuttingDown: "shutting-down",
	KindRenewed:      "renewed",
	KindHeld:         "held",
}

// String returns the wire spelling of k.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return ""
}

// Reply is one answer line.
type Reply struct {
	Kind  Kind
	Name  string // name:, in session answers
	Token uint64 // token:, on extension grants
	// Msg is the text after "err," (and after its name: key), or the JSON
	// document of a stats or holders answer.
	Msg string
	// DeadPeer is the server's dead-peer timeout, in a session answer.
	DeadPeer time.Duration
	// Degraded is why the server cannot grant every lock now, in an
	// extension pong (pong,degraded:WHY); empty when it can.
	Degraded string
	// Lease is the lease id of a lease grant (ok,...,lease:ID); valid
	// (ValidLeaseID) when not empty. A secret: never log it.
	Lease string
	// TTL is what remains of a lease (ttl:), in its grant, renewed and
	// held answers, to the millisecond.
	TTL time.Duration
	// Why is why a session's lock was taken away (lost,name:N,why:TEXT),
	// for people, with control characters turned into spaces; empty in
	// the answer of .break.
	Why string
}

// AppendReply appends the answer line for kind, ending in "\n". Empty name,
// zero token and empty msg are left out, so AppendReply(b, KindOK, "", 0, "")
// is tcpnetlock's plain "ok\n". For KindErr, KindStats and KindHolders msg
// follows the other fields verbatim; it must not contain a newline. The
// answers that carry more write them with their own function: AppendLease
// (lease grants, renewed, held), AppendLost (a loss with its reason),
// AppendPong, AppendSession.
func AppendReply(b []byte, kind Kind, name string, token uint64, msg string) []byte {
	b = append(b, kind.String()...)
	if name != "" {
		b = append(b, ",name:"...)
		b = append(b, name...)
	}
	if token != 0 {
		b = append(b, ",token:"...)
		b = strconv.AppendUint(b, token, 10)
	}
	if msg != "" {
		b = append(b, ',')
		b = append(b, msg...)
	}
	return append(b, '\n')
}

// AppendLease appends an answer about a lease:
//
//	AppendLease(b, KindOK, "", T, ID, S)        ok,token:T,lease:ID,ttl:S       grant, plain connection
//	AppendLease(b, KindOK, "N", T, ID, S)       ok,name:N,token:T,lease:ID,ttl:S  grant, in a session
//	AppendLease(b, KindRenewed, "N", T, "", S)  renewed,name:N,token:T,ttl:S    answer to .renew
//	AppendLease(b, KindHeld, "N", T, "", S)     held,name:N,token:T,ttl:S       answer to .is-held
//
// Empty name and lease and a zero token are left out, as in AppendReply;
// ttl is always written. ttl is what remains of the lease, written in
// seconds as FormatWait writes them, cut down to the millisecond (a client
// never believes it has more time than it has, and the line stays short:
// "7199.999"); a negative ttl is written 0. The lease id is written as
// given: it is the server's own, from NewLeaseID.
func AppendLease(b []byte, kind Kind, name string, token uint64, lease string, ttl time.Duration) []byte {
	b = append(b, kind.String()...)
	if name != "" {
		b = append(b, ",name:"...)
		b = append(b, name...)
	}
	if token != 0 {
		b = append(b, ",token:"...)
		b = strconv.AppendUint(b, token, 10)
	}
	if lease != "" {
		b = append(b, ",lease:"...)
		b = append(b, lease...)
	}
	b = append(b, ",ttl:"...)
	b = appendWait(b, max(ttl, 0).Truncate(time.Millisecond))
	return append(b, '\n')
}

// AppendLost appends the line a session gets, unprompted, when one of its
// locks is taken away: "lost,name:N", byte for byte AppendReply's, when why
// is empty (an operator's .break), else "lost,name:N,why:WHY" (the maximum
// hold was reached, say). WHY is free text for people; it is written as
// AppendPong writes its reason, commas turned into ';' and control
// characters (a newline among them) into spaces, so that it stays one
// value of one line whatever the caller passes.
func AppendLost(b []byte, name, why string) []byte {
	b = append(b, "lost"...)
	if name != "" {
		b = append(b, ",name:"...)
		b = append(b, name...)
	}
	if why != "" {
		b = append(b, ",why:"...)
		b = appendText(b, why)
	}
	return append(b, '\n')
}

// appendText appends free text as one value: ',' written ';' and control
// bytes ' ', so that it can end neither the value nor the line.
func appendText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ',':
			b = append(b, ';')
		case c < 0x20 || c == 0x7f:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}

// AppendPong appends the answer to .ping: "pong", or, when degraded is not
// empty (and only for an extension request: a legacy .ping is answered
// plain "pong" whatever happens), "pong,degraded:WHY", where WHY is degraded
// with commas turned into ';' and control characters into spaces, so that
// it stays one value of one line.
func AppendPong(b []byte, degraded string) []byte {
	b = append(b, "pong"...)
	if degraded != "" {
		b = append(b, ",degraded:"...)
		b = appendText(b, degraded)
	}
	return append(b, '\n')
}

// AppendSession appends the answer to .session.
func AppendSession(b []byte, deadPeer time.Duration) []byte {
	b = append(b, "session,dead-peer-timeout:"...)
	b = strconv.AppendFloat(b, deadPeer.Seconds(), 'f', -1, 64)
	return append(b, '\n')
}

// MaxReplyLine is the longest answer line a client reads: a server's
// --max-answer-bytes cannot exceed it.
const MaxReplyLine = 64 << 20

// ErrBadReply is returned by ParseReply for a line that is no answer tnl or
// tcpnetlock would give.
var ErrBadReply = errors.New("malformed reply")

// ParseReply parses one answer line, with or without its line ending.
func ParseReply(line []byte) (Reply, error) {
	var r Reply
	line = trimEOL(line)
	if bytes.IndexByte(line, '\n') >= 0 { // two lines: Msg must not carry a line break
		return r, ErrBadReply
	}
	word, rest, more := cut(line, ',')
	for k := KindOK; int(k) < len(kindNames); k++ {
		if string(word) == kindNames[k] {
			r.Kind = k
			break
		}
	}
	if r.Kind == KindUnknown {
		return r, ErrBadReply
	}
	switch r.Kind {
	case KindStats, KindHolders:
		if !more || len(rest) == 0 || rest[0] != '{' {
			return r, ErrBadReply
		}
		r.Msg = string(rest)
		return r, nil
	case KindErr:
		if !more {
			return r, ErrBadReply
		}
		if bytes.HasPrefix(rest, []byte("name:")) {
			var name []byte
			name, rest, _ = cut(rest[len("name:"):], ',')
			r.Name = string(name)
		}
		r.Msg = string(rest)
		return r, nil
	}
	for more {
		var field []byte
		field, rest, more = cut(rest, ',')
		k, v, ok := cut(field, ':')
		if !ok {
			return r, ErrBadReply
		}
		switch string(k) {
		case "name":
			r.Name = string(v)
		case "token":
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return r, ErrBadReply
			}
			r.Token = n
		case "dead-peer-timeout":
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil || !(f > 0 && f <= 1e6) { // written so that NaN is refused
				return r, ErrBadReply
			}
			r.DeadPeer = time.Duration(math.Round(f * float64(time.Second)))
		case "degraded":
			r.Degraded = string(v)
		case "lease":
			if !ValidLeaseID(string(v)) {
				return r, ErrBadReply
			}
			r.Lease = string(v)
		case "ttl":
			d, err := ParseDuration(string(v))
			if err != nil {
				return r, ErrBadReply
			}
			r.TTL = d
		case "why":
			// Cleaned as AppendLost writes it: the reason is printed to
			// people (tnl-do's loss line), so no server can put a
			// terminal's control sequence in it.
			r.Why = string(appendText(nil, string(v)))
		}
	}
	return r, nil
}

// The reasons of "err" answers that a program may act on, as the server
// writes them after "err," (and after name:N, in a session). A server may
// follow a reason with ": " and details for people; any other message is
// for people only. Test with IsReason, which allows for the details.
const (
	ReasonNotHeld       = "not held"                    // release or .break of a name not held
	ReasonInvalidName   = "invalid lock name"           // a name outside the allowed set
	ReasonAuthRequired  = "authentication required"     // the server wants auth:TOKEN
	ReasonAuthFailed    = "authentication failed"       // auth:TOKEN is not the server's
	ReasonAdminRequired = "admin token required"        // .break without the admin token
	ReasonLimitMismatch = "limit mismatch"              // held or awaited with another limit
	ReasonQueueFull     = "queue full"                  // too many waiters for the name
	ReasonTooManyConns  = "too many connections"        // over the server's cap
	ReasonLineTooLong   = "line too long"               // a request over the line limit
	ReasonFirstLineSlow = "timeout waiting for request" // no request in time
	ReasonNoLease       = "no such lease"               // .renew, .release, .is-held: unknown, expired or released id
)

// IsReason reports whether msg, the message of an "err" answer, gives
// reason: it is reason, or reason followed by ": " and details.
func IsReason(msg, reason string) bool {
	return len(msg) >= len(reason) && msg[:len(reason)] == reason &&
		(len(msg) == len(reason) || strings.HasPrefix(msg[len(reason):], ": "))
}
