package protocol_test

import (
	"encoding/json"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
)

// encodeAll streams doc through a HoldersEncoder of max bytes, as the server
// does, emptying the buffer every few pieces, and returns the line and how
// many parties went in.
func encodeAll(doc protocol.Holders, max int) (string, bool) {
	e := protocol.HoldersEncoder{Max: max}
	var out strings.Builder
	b := e.Begin(nil)
	truncated := doc.Truncated
	pieces := 0
	put := func(next []byte, ok bool) bool {
		b = next
		if pieces++; pieces%3 == 0 { // write out, as the server does in chunks
			out.Write(b)
			b = b[:0]
		}
		if !ok {
			truncated = true
		}
		return ok
	}
locks:
	for i := range doc.Locks {
		l := &doc.Locks[i]
		first := true
		for j := range l.Holders {
			var ok bool
			if first {
				ok = put(e.Lock(b, l, &l.Holders[j], false))
			} else {
				ok = put(e.Party(b, &l.Holders[j], false))
			}
			if !ok {
				break locks
			}
			first = false
		}
		for j := range l.Waiters {
			var ok bool
			if first {
				ok = put(e.Lock(b, l, &l.Waiters[j], true))
			} else {
				ok = put(e.Party(b, &l.Waiters[j], true))
			}
			if !ok {
				break locks
			}
			first = false
		}
	}
	b = e.End(b, truncated)
	out.Write(b)
	if out.Len() != e.Len() {
		panic("Len is not the length written")
	}
	return out.String(), truncated
}

func marshalLine(t *testing.T, doc protocol.Holders) string {
	t.Helper()
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return "holders," + string(j) + "\n"
}

func party(id string, tok uint64) protocol.Party {
	return protocol.Party{ClientID: id, Host: "h<&>\"\\", PID: 42, Addr: "127.0.0.1:5000", Mode: "exclusive",
		Since: time.Date(2026, 11, 25, 9, 49, 48, 238534705, time.UTC), Token: tok}
}

// leaseParty is a lease's holder: no address, an expiry, a fingerprint.
func leaseParty() protocol.Party {
	p := party("ci@build-3", 4)
	p.Addr = ""
	exp := time.Date(2026, 11, 25, 11, 49, 48, 0, time.UTC)
	p.Expires, p.Lease = &exp, protocol.LeaseFingerprint(protocol.LeaseKey("0123456789abcdef0123456789abcdef"))
	return p
}

// capped is a connection-bound holder under a maximum hold.
func capped() protocol.Party {
	p := party("ops", 5)
	exp := time.Date(2026, 11, 25, 9, 50, 18, 238534705, time.UTC)
	p.Expires = &exp
	return p
}

// TestPartyJSON pins the bytes of a party: one without an expiry or a lease
// is written as before they were added, and the new keys come last.
func TestPartyJSON(t *testing.T) {
	const base = `{"client_id":"ci@build-3","host":"h\u003c\u0026\u003e\"\\","pid":42,"addr":"127.0.0.1:5000","mode":"exclusive","since":"2026-11-25T09:49:48.238534705Z"`
	for _, tc := range []struct {
		p    protocol.Party
		want string
	}{
		{party("ci@build-3", 9), base + `,"token":9}`},
		{party("ci@build-3", 0), base + `}`},
		{leaseParty(), strings.Replace(base, `"127.0.0.1:5000"`, `""`, 1) + `,"token":4,"expires":"2026-11-25T11:49:48Z","lease":"` +
			protocol.LeaseFingerprint(protocol.LeaseKey("0123456789abcdef0123456789abcdef")) + `"}`},
	} {
		if got := string(protocol.AppendParty(nil, &tc.p)); got != tc.want {
			t.Errorf("AppendParty:\n got %s\nwant %s", got, tc.want)
		}
		if j, err := json.Marshal(tc.p); err != nil || string(j) != tc.want {
			t.Errorf("json.Marshal:\n got %s, %v\nwant %s", j, err, tc.want)
		}
	}
}

// TestHoldersEncoderExact: with room enough, the streamed line is byte for
// byte encoding/json's, for holders only, waiters only, both, none.
func TestHoldersEncoderExact(t *testing.T) {
	docs := []protocol.Holders{
		{Locks: []protocol.LockInfo{}},
		{Locks: []protocol.LockInfo{{Name: "deploy", Mode: "exclusive", Limit: 1, Token: 9,
			Holders: []protocol.Party{party("ci@build-3", 9)}, Waiters: []protocol.Party{}}}},
		{Locks: []protocol.LockInfo{
			{Name: "a", Mode: "exclusive", Limit: 1, Token: 3, Holders: []protocol.Party{}, Waiters: []protocol.Party{party("w1", 0), party("w2", 0)}},
			{Name: "b", Mode: "shared", Limit: 1, Token: 5, Holders: []protocol.Party{party("s1", 4), party("s2", 5)}, Waiters: []protocol.Party{party("x", 0)}},
			{Name: "c\u2028", Mode: "exclusive", Limit: 3, Token: 7, Holders: []protocol.Party{party("\xff\x01\t", 7)}, Waiters: []protocol.Party{}},
		}},
		{Locks: []protocol.LockInfo{{Name: "nightly", Mode: "exclusive", Limit: 1, Token: 4,
			Holders: []protocol.Party{leaseParty(), capped()}, Waiters: []protocol.Party{party("w", 0)}}}},
	}
	for i, doc := range docs {
		for _, tr := range []bool{false, true} {
			doc.Truncated = tr
			got, _ := encodeAll(doc, 1<<20)
			if want := marshalLine(t, doc); got != want {
				t.Errorf("doc %d, truncated %v:\n got %s\nwant %s", i, tr, got, want)
			}
		}
	}
}

// TestHoldersEncoderMax: for every bound, the line fits it exactly or under,
// is one valid line, and is encoding/json's of the parties that fit, with
// "truncated":true as soon as one is left out.
func TestHoldersEncoderMax(t *testing.T) {
	var doc protocol.Holders
	for i := range 5 {
		l := protocol.LockInfo{Name: "lock-" + string(rune('a'+i)), Mode: "exclusive", Limit: 1, Token: uint64(10 + i),
			Holders: []protocol.Party{}, Waiters: []protocol.Party{}}
		for j := range i % 3 {
			l.Holders = append(l.Holders, party("holder", uint64(j+1)))
		}
		for range 2 - i%3 + 1 {
			l.Waiters = append(l.Waiters, party("waiter", 0))
		}
		doc.Locks = append(doc.Locks, l)
	}
	full := marshalLine(t, doc)
	if got, tr := encodeAll(doc, len(full)+40); got != full || tr {
		t.Fatalf("with room: truncated %v\n got %s\nwant %s", tr, got, full)
	}
	if got, _ := encodeAll(doc, protocol.MinHoldersAnswer); got != `holders,{"locks":[],"truncated":true}`+"\n" {
		t.Errorf("at the minimum: %q", got)
	}
	for max := protocol.MinHoldersAnswer; max < len(full)+40; max++ {
		got, tr := encodeAll(doc, max)
		if len(got) > max || !strings.HasSuffix(got, "}\n") || strings.Count(got, "\n") != 1 {
			t.Fatalf("max %d: %d bytes: %q", max, len(got), got)
		}
		var back protocol.Holders
		if err := json.Unmarshal([]byte(strings.TrimPrefix(got, "holders,")), &back); err != nil {
			t.Fatalf("max %d: %v: %s", max, err, got)
		}
		if back.Truncated != tr || (tr && got == full) {
			t.Fatalf("max %d: truncated %v in %s", max, back.Truncated, got)
		}
		// What was listed is a prefix of the document, lock by lock.
		for i, l := range back.Locks {
			w := doc.Locks[i]
			if len(l.Holders)+len(l.Waiters) == 0 {
				t.Fatalf("max %d: lock %s listed without a party", max, l.Name)
			}
			w.Holders = w.Holders[:len(l.Holders)]
			if len(l.Waiters) > 0 && len(l.Holders) != len(doc.Locks[i].Holders) {
				t.Fatalf("max %d: waiters of %s listed after only some of its holders", max, l.Name)
			}
			w.Waiters = w.Waiters[:len(l.Waiters)]
			back.Locks[i] = w
		}
		if want := marshalLine(t, back); got != want {
			t.Fatalf("max %d:\n got %s\nwant %s", max, got, want)
		}
	}
}

// TestMinLockBytes: no lock takes fewer bytes than MinLockBytes, which
// bounds how many names an answer can list.
func TestMinLockBytes(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	for range 100 {
		l := protocol.LockInfo{Name: strings.Repeat("x", 1+rnd.Intn(20)), Mode: []string{"shared", "exclusive"}[rnd.Intn(2)], Limit: 1 + rnd.Intn(5)}
		p := protocol.Party{Mode: l.Mode, Token: uint64(rnd.Intn(3))}
		e := protocol.HoldersEncoder{Max: 1 << 20}
		b := e.Begin(nil)
		b0 := len(b)
		b, _ = e.Lock(b, &l, &p, rnd.Intn(2) == 0)
		b = e.End(b, false)
		if n := len(b) - b0 - len("]}\n"); n < protocol.MinLockBytes {
			t.Fatalf("%s takes %d bytes, MinLockBytes is %d", b, n, protocol.MinLockBytes)
		}
	}
}

// FuzzAppendJSONString: every string is written as encoding/json writes it.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\"\\", "\x00\x1f\x7f", "\b\f\n\r\t", "\xff", "é\u2028\u2029", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := protocol.AppendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}
