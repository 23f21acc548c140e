package main

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// The null server answers every request line of the tnl protocol with the
// reply a granting server would give, and keeps no lock table at all. It is
// the floor of this machine: TCP, syscalls, the Go runtime and the load
// generator itself. It is written the way a careful first Go server would be
// (a goroutine per connection, buffered reads, replies flushed only when no
// further request is already buffered), so that "tnl/null" shows how much of
// tnl's cost is tnl's own.

// nullDeadPeerTimeout is what the null server announces on ".session".
const nullDeadPeerTimeout = 30

// serveNull accepts on ln until it is closed.
func serveNull(ln net.Listener) error {
	var token atomic.Uint64
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends: back off as net/http does, then go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go nullConn(c, &token)
	}
}

func nullConn(c net.Conn, token *atomic.Uint64) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	var st nullState
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		reply, closeAfter := st.reply(w.AvailableBuffer(), line, token)
		_, _ = w.Write(reply)
		if closeAfter || r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

// nullState is what the null server remembers of a connection: only whether
// it is a session, which changes the shape of the answers.
type nullState struct {
	session bool
	holding bool // a legacy connection that was answered "ok"
}

// reply appends the answer to line onto dst, and says whether the server
// closes the connection after it.
func (st *nullState) reply(dst, line []byte, token *atomic.Uint64) ([]byte, bool) {
	line = bytes.TrimRight(line, "\r\n")
	action, rest, _ := bytes.Cut(line, []byte(","))
	action = bytes.TrimSpace(action)
	switch string(action) {
	case ".session":
		st.session = true
		dst = append(dst, "session,dead-peer-timeout:"...)
		dst = strconv.AppendInt(dst, nullDeadPeerTimeout, 10)
		return append(dst, '\n'), false
	case "lock":
		name := field(rest, "name")
		switch {
		case st.session:
			dst = append(dst, "ok,name:"...)
			dst = append(dst, name...)
			dst = append(dst, ",token:"...)
			dst = strconv.AppendUint(dst, token.Add(1), 10)
			return append(dst, '\n'), false
		case st.holding:
			return append(dst, "bad-action\n"...), false
		case field(rest, "wait") != nil || field(rest, "mode") != nil || field(rest, "limit") != nil:
			st.holding = true
			dst = append(dst, "ok,token:"...)
			dst = strconv.AppendUint(dst, token.Add(1), 10)
			return append(dst, '\n'), false
		default:
			st.holding = true
			return append(dst, "ok\n"...), false
		}
	case "release":
		if st.session {
			dst = append(dst, "released,name:"...)
			dst = append(dst, field(rest, "name")...)
			return append(dst, '\n'), false
		}
		return append(dst, "released\n"...), true
	case ".keepalive":
		return append(dst, "alive\n"...), false
	case ".ping":
		return append(dst, "pong\n"...), !st.session
	case ".quit":
		return append(dst, "bye\n"...), true
	default:
		return append(dst, "bad-action\n"...), !st.session && !st.holding
	}
}

// field returns the trimmed value of key in the ",KEY:VALUE..." tail of a
// request line, or nil when the key is absent. The last occurrence wins, as
// in the protocol.
func field(rest []byte, key string) []byte {
	var val []byte
	for len(rest) > 0 {
		var kv []byte
		kv, rest, _ = bytes.Cut(rest, []byte(","))
		k, v, _ := bytes.Cut(kv, []byte(":"))
		if string(bytes.TrimSpace(k)) == key {
			val = bytes.TrimSpace(v)
			if val == nil {
				val = []byte{}
			}
		}
	}
	return val
}
