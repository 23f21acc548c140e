package protocol

import (
	"strconv"
	"time"
)

// AppendRequest appends r as one request line ending in "\n", the inverse of
// ParseRequest: every form a client sends, legacy and extension, comes from
// here, so that the keys and their spelling have one home.
//
//	Request{Action: ActLock, Name: "x", ClientID: "me"}      lock,name:x,client-id:me
//	Request{Action: ActRelease}                              release
//	Request{Action: ActPing}                                 .ping
//	Request{Action: ActLock, Name: "x", Wait: 2500 * time.Millisecond, Mode: Shared}
//	                                                         lock,name:x,wait:2.5,mode:shared
//	Request{Action: ActSession, ClientID: "me", Host: "h", PID: 42, Auth: "s"}
//	                                                         .session,client-id:me,host:h,pid:42,auth:s
//	Request{Action: ActLock, Name: "x", TTL: 2 * time.Hour, MaxHold: 24 * time.Hour}
//	                                                         lock,name:x,ttl:7200,max-hold:86400
//	Request{Action: ActRenew, Lease: id, TTL: time.Hour}     .renew,lease:ID,ttl:3600
//	Request{Action: ActReleaseLease, Lease: id}              .release,lease:ID
//	Request{Action: ActIsHeld, Lease: id}                    .is-held,lease:ID
//
// Keys come in the order name, lease, client-id, host, pid, ttl, wait,
// mode, limit, max-hold, auth, each only when set: name when HasName or
// Name is not empty, lease, client-id, host and auth when not empty, pid,
// ttl, wait, limit and max-hold when not 0 (durations as FormatWait writes
// them: seconds, exact to the nanosecond), mode only when Shared. Ext asks for an extension request: when it is set and no other
// extension key is, mode:exclusive (the default mode) is written, so that
// the line still is one; the extension keys set it anyway. Action must not
// be ActUnknown: there is no word to write for it.
//
// Values are written as given, except the bytes that a line cannot carry
// inside a value. In lease, client-id, host and auth a ',' or a control byte is
// written '_' (the server would not keep a control byte in them anyway). In
// the name a ',' or a '\n' is written '?', which no valid name contains, so
// that the server refuses the name instead of reading another one; callers
// check names with ValidName first. Spaces around a value are not part of
// it: the server trims them.
//
// It never allocates when b has room for the line.
func AppendRequest(b []byte, r Request) []byte {
	b = append(b, r.Action.String()...)
	if r.HasName || r.Name != "" {
		b = append(b, ",name:"...)
		b = appendName(b, r.Name)
	}
	if r.Lease != "" {
		b = append(b, ",lease:"...)
		b = appendInfo(b, r.Lease)
	}
	if r.ClientID != "" {
		b = append(b, ",client-id:"...)
		b = appendInfo(b, r.ClientID)
	}
	if r.Host != "" {
		b = append(b, ",host:"...)
		b = appendInfo(b, r.Host)
	}
	if r.PID != 0 {
		b = append(b, ",pid:"...)
		b = strconv.AppendInt(b, int64(r.PID), 10)
	}
	if r.TTL != 0 {
		b = append(b, ",ttl:"...)
		b = appendWait(b, r.TTL)
	}
	if r.Wait != 0 {
		b = append(b, ",wait:"...)
		b = appendWait(b, r.Wait)
	}
	ext := r.Host != "" || r.PID != 0 || r.Wait != 0 || r.Mode == Shared || r.Limit != 0 ||
		r.TTL != 0 || r.MaxHold != 0 || r.Lease != ""
	if r.Mode == Shared || r.Ext && !ext {
		b = append(b, ",mode:"...)
		b = append(b, r.Mode.String()...)
	}
	if r.Limit != 0 {
		b = append(b, ",limit:"...)
		b = strconv.AppendInt(b, int64(r.Limit), 10)
	}
	if r.MaxHold != 0 {
		b = append(b, ",max-hold:"...)
		b = appendWait(b, r.MaxHold)
	}
	if r.Auth != "" {
		b = append(b, ",auth:"...)
		b = appendInfo(b, r.Auth)
	}
	return append(b, '\n')
}

// appendWait appends d as FormatWait writes it: every duration of the wire
// (wait, ttl, max-hold, and the ttl of answers) is written by this one rule.
func appendWait(b []byte, d time.Duration) []byte {
	if d == WaitForever {
		return append(b, "inf"...)
	}
	return strconv.AppendFloat(b, d.Seconds(), 'f', -1, 64)
}

// appendInfo appends an informational value (client id, host, secret) with
// ',' and control bytes written '_': they must never turn into another key
// or another request.
func appendInfo(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ',' || c < 0x20 || c == 0x7f {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// appendName appends a lock name with ',' and '\n' written '?': a name is
// never turned into another valid one, and never into another key.
func appendName(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ',' || c == '\n' {
			c = '?'
		}
		b = append(b, c)
	}
	return b
}
