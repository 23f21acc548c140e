package protocol

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Holders is the JSON document of a holders answer ("holders,{...}"):
// who holds and who waits for each name. It is tnl's one holders schema:
// the server writes it (HoldersEncoder), lib/client returns its LockInfos,
// and tnl-stats --json prints them. The JSON names are part of the
// protocol: fields may be added, none renamed or removed.
type Holders struct {
	// Locks are the names listed, each held or awaited by someone.
	Locks []LockInfo `json:"locks"`
	// Truncated: the server left something out to keep the answer within
	// its bounds (names, holders or waiters of a name, bytes).
	Truncated bool `json:"truncated,omitempty"`
}

// LockInfo is one name with its holders and its waiters in queue order.
type LockInfo struct {
	Name    string  `json:"name"`
	Mode    string  `json:"mode"`    // "exclusive" or "shared" (Mode.String)
	Limit   int     `json:"limit"`   // semaphore size; 1 for a plain lock
	Token   uint64  `json:"token"`   // the latest fencing token granted for the name
	Holders []Party `json:"holders"` // never null on the wire
	Waiters []Party `json:"waiters"` // in queue order; never null on the wire
}

// Party is a holder or a waiter of a name: who it says it is (client id,
// host, pid, all as sent with the request, clipped), where the server sees
// it, since when, and until when.
type Party struct {
	ClientID string    `json:"client_id"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`             // 0 when not sent
	Addr     string    `json:"addr"`            // the client's address as the server sees it; empty for a lease
	Mode     string    `json:"mode"`            // "exclusive" or "shared"
	Since    time.Time `json:"since"`           // granted, or queued for a waiter; UTC
	Token    uint64    `json:"token,omitempty"` // a holder's fencing token; absent for waiters
	// Expires is when the server will take the lock away (a lease's TTL
	// or a maximum hold, the earlier), UTC; absent when nothing ends the
	// hold but its holder.
	Expires *time.Time `json:"expires,omitempty"`
	// Lease is a lease's LeaseFingerprint (8 hex digits), never its id;
	// absent for a holder bound to its connection.
	Lease string `json:"lease,omitempty"`
}

// HoldersEncoder writes a holders answer line ("holders,{...}\n") piece by
// piece, appending to a byte slice the caller may write out and empty
// between two calls, so that an answer of any size is sent in chunks and
// never built whole. The line it writes is byte for byte what
// encoding/json makes of the same Holders, and never longer than Max
// bytes, "holders," and the newline included: a piece that would not fit is
// left out (the call reports false) and the answer ends with
// "truncated":true.
//
// A lock is opened together with its first party, so that a lock is never
// listed without any of the holders or waiters that put it in the table.
type HoldersEncoder struct {
	Max int // the answer's bound in bytes; at least MinHoldersAnswer

	n         int  // bytes appended so far, also those written out since
	locks     int  // locks opened
	inLock    bool // a lock is open
	inWaiters bool // its holders are closed, its waiters open
	parties   int  // parties in the open list
}

// Pieces of the document. The encoder reserves room for the longest way to
// close it, so that it can always end, truncated, within Max.
const (
	holdersOpen    = "holders,{\"locks\":["
	lockWaiters    = "],\"waiters\":["
	lockClose      = "]}"
	docClose       = "]}\n"
	docTruncated   = "],\"truncated\":true}\n"
	holdersReserve = len(lockWaiters) + len(lockClose) + len(docTruncated)
)

// MinHoldersAnswer is the least HoldersEncoder.Max: an empty, truncated
// answer.
const MinHoldersAnswer = len(holdersOpen) + holdersReserve

// MinLockBytes is the least a lock takes in a holders answer (a one-byte
// name with one party with empty strings): an answer of Max bytes lists at
// most Max/MinLockBytes locks.
var MinLockBytes = len(AppendLockOpen(nil, &LockInfo{Name: "a", Mode: "shared", Limit: 1})) +
	len(AppendParty(nil, &Party{Mode: "shared"})) + len(lockWaiters) + len(lockClose)

// Begin appends the start of the answer.
func (e *HoldersEncoder) Begin(b []byte) []byte {
	e.n = len(holdersOpen)
	return append(b, holdersOpen...)
}

// fits reports whether the bytes appended to b since start keep the answer
// within Max with room left to close it, and counts them if so.
func (e *HoldersEncoder) fits(b []byte, start int) bool {
	if e.n+len(b)-start+holdersReserve > e.Max {
		return false
	}
	e.n += len(b) - start
	return true
}

// Lock closes the lock before it, if any, and opens l with its first party
// p, a waiter when waiter is true (the lock has no holder listed then). It
// reports false, and leaves b as it was, when there is no room for them.
func (e *HoldersEncoder) Lock(b []byte, l *LockInfo, p *Party, waiter bool) ([]byte, bool) {
	start := len(b)
	if e.inLock {
		b = e.appendLockClose(b)
	}
	if e.locks > 0 {
		b = append(b, ',')
	}
	b = AppendLockOpen(b, l)
	if waiter {
		b = append(b, lockWaiters...)
	}
	b = AppendParty(b, p)
	if !e.fits(b, start) {
		return b[:start], false
	}
	e.locks++
	e.inLock, e.inWaiters, e.parties = true, waiter, 1
	return b, true
}

// Party appends one more party to the open lock: a holder, or a waiter
// when waiter is true. Holders come first: after a waiter, no holder. It
// reports false, and leaves b as it was, when there is no room for it.
func (e *HoldersEncoder) Party(b []byte, p *Party, waiter bool) ([]byte, bool) {
	if !e.inLock || (e.inWaiters && !waiter) {
		return b, false
	}
	start := len(b)
	switch {
	case waiter && !e.inWaiters:
		b = append(b, lockWaiters...)
	case e.parties > 0:
		b = append(b, ',')
	}
	b = AppendParty(b, p)
	if !e.fits(b, start) {
		return b[:start], false
	}
	if waiter && !e.inWaiters {
		e.inWaiters, e.parties = true, 0
	}
	e.parties++
	return b, true
}

// appendLockClose appends what closes the open lock.
func (e *HoldersEncoder) appendLockClose(b []byte) []byte {
	if !e.inWaiters {
		b = append(b, lockWaiters...)
	}
	return append(b, lockClose...)
}

// End closes the answer, with "truncated":true when truncated.
func (e *HoldersEncoder) End(b []byte, truncated bool) []byte {
	start := len(b)
	if e.inLock {
		b = e.appendLockClose(b)
		e.inLock = false
	}
	if truncated {
		b = append(b, docTruncated...)
	} else {
		b = append(b, docClose...)
	}
	e.n += len(b) - start
	return b
}

// Len is the length of the answer so far.
func (e *HoldersEncoder) Len() int { return e.n }

// AppendLockOpen appends a LockInfo's JSON up to the opening of its holders
// array: {"name":...,"token":T,"holders":[
func AppendLockOpen(b []byte, l *LockInfo) []byte {
	b = append(b, `{"name":`...)
	b = AppendJSONString(b, l.Name)
	b = append(b, `,"mode":`...)
	b = AppendJSONString(b, l.Mode)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, int64(l.Limit), 10)
	b = append(b, `,"token":`...)
	b = strconv.AppendUint(b, l.Token, 10)
	return append(b, `,"holders":[`...)
}

// AppendParty appends a Party's JSON, as encoding/json writes it.
func AppendParty(b []byte, p *Party) []byte {
	b = append(b, `{"client_id":`...)
	b = AppendJSONString(b, p.ClientID)
	b = append(b, `,"host":`...)
	b = AppendJSONString(b, p.Host)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(p.PID), 10)
	b = append(b, `,"addr":`...)
	b = AppendJSONString(b, p.Addr)
	b = append(b, `,"mode":`...)
	b = AppendJSONString(b, p.Mode)
	b = append(b, `,"since":"`...)
	b = p.Since.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if p.Token != 0 {
		b = append(b, `,"token":`...)
		b = strconv.AppendUint(b, p.Token, 10)
	}
	if p.Expires != nil {
		b = append(b, `,"expires":"`...)
		b = p.Expires.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if p.Lease != "" {
		b = append(b, `,"lease":`...)
		b = AppendJSONString(b, p.Lease)
	}
	return append(b, '}')
}

// AppendJSONString appends s as a JSON string exactly as encoding/json's
// Marshal writes it: <, > and & escaped for HTML, invalid UTF-8 replaced by
// U+FFFD, U+2028 and U+2029 escaped.
func AppendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
