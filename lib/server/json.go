package server

import (
	"encoding/json"
	"strconv"
	"syscall"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/protocol"
)

// statsJSON writes the counters in tcpnetlock's style ({"key": value, ...}),
// whose own tests look for lock_count, maxrss, requests_count,
// lock_acquired_count and lock_not_acquired_count.
func (c *conn) statsJSON() string {
	st := c.srv.Stats()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	kv := []struct {
		k string
		v int64
	}{
		{"lock_count", st.Held},
		{"maxrss", int64(ru.Maxrss)},
		{"requests_count", int64(st.Requests)},
		{"lock_acquired_count", int64(st.Acquired)},
		{"lock_not_acquired_count", int64(st.NotAcquired)},
		{"names", st.Names},
		{"waiting", st.Waiting},
		{"connections", st.Connections},
		{"sessions", st.Sessions},
		{"uptime_seconds", int64(st.Uptime / time.Second)},
		// 1 while fencing tokens cannot be made durable (the reason is in
		// the log and in an extension .ping): values stay numbers, which
		// tnl's clients, old ones too, decode as such.
		{"degraded", b2i(st.Degraded != nil)},
	}
	b := make([]byte, 0, 256)
	b = append(b, '{')
	for i, e := range kv {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '"')
		b = append(b, e.k...)
		b = append(b, `": `...)
		b = strconv.AppendInt(b, e.v, 10)
	}
	return string(append(b, '}'))
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// The holders document types live in lib/protocol, shared with clients.
type (
	HoldersDoc = protocol.HoldersDoc
	LockDoc    = protocol.LockDoc
	PartyDoc   = protocol.PartyDoc
)

func (c *conn) holdersJSON(req protocol.Request) string {
	var names []string
	if req.HasName {
		names = []string{req.Name}
	}
	max := c.srv.cfg.MaxListed
	infos := c.srv.table.Snapshot(names, max)
	doc := HoldersDoc{Locks: make([]LockDoc, 0, min(len(infos), max))}
	if len(infos) > max {
		infos, doc.Truncated = infos[:max], true
	}
	for _, li := range infos {
		ld := LockDoc{Name: li.Name, Mode: li.Mode.String(), Limit: li.Limit, Token: li.Token,
			Holders: make([]PartyDoc, 0, len(li.Holders)), Waiters: make([]PartyDoc, 0, len(li.Waiters))}
		for _, p := range li.Holders {
			ld.Holders = append(ld.Holders, partyDoc(p))
		}
		for _, p := range li.Waiters {
			ld.Waiters = append(ld.Waiters, partyDoc(p))
		}
		doc.Locks = append(doc.Locks, ld)
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

func partyDoc(p lockd.Party) PartyDoc {
	return PartyDoc{ClientID: p.ClientID, Host: p.Host, PID: p.PID, Addr: p.Addr, Mode: p.Mode.String(), Since: p.Since.UTC(), Token: p.Token}
}
