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
	KindLost              // lost,name:N: an operator broke a session's lock
	KindShuttingDown      // shutting-down: answer to an admin's .server-shutdown
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
}

// AppendReply appends the answer line for kind, ending in "\n". Empty name,
// zero token and empty msg are left out, so AppendReply(b, KindOK, "", 0, "")
// is tcpnetlock's plain "ok\n". For KindErr, KindStats and KindHolders msg
// follows the other fields verbatim; it must not contain a newline.
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

// AppendPong appends the answer to .ping: "pong", or, when degraded is not
// empty (and only for an extension request: a legacy .ping is answered
// plain "pong" whatever happens), "pong,degraded:WHY", where WHY is degraded
// with commas turned into ';' and control characters into spaces, so that
// it stays one value of one line.
func AppendPong(b []byte, degraded string) []byte {
	b = append(b, "pong"...)
	if degraded != "" {
		b = append(b, ",degraded:"...)
		for i := 0; i < len(degraded); i++ {
			switch c := degraded[i]; {
			case c == ',':
				b = append(b, ';')
			case c < 0x20 || c == 0x7f:
				b = append(b, ' ')
			default:
				b = append(b, c)
			}
		}
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
)

// IsReason reports whether msg, the message of an "err" answer, gives
// reason: it is reason, or reason followed by ": " and details.
func IsReason(msg, reason string) bool {
	return len(msg) >= len(reason) && msg[:len(reason)] == reason &&
		(len(msg) == len(reason) || strings.HasPrefix(msg[len(reason):], ": "))
}
