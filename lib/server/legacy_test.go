package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tnl-lock/tnl/lib/server"
)

// The transcripts of CONTRACT §1.1: what tcpnetlock 0.1.8's clients and nc
// users send, and the exact bytes they must get back. Each runs on a fresh
// server.
var legacyScripts = []struct {
	name  string
	steps []string
}{
	{"lock keepalive release", []string{
		"0>lock,name:x\n", "0<ok\n",
		"0>.keepalive\n", "0<alive\n",
		"0>.keepalive\n", "0<alive\n",
		"1>lock,name:x\n", "1<not-granted\n", "1$",
		"0>release\n", "0<released\n", "0$",
		// released means free, at once: no polling needed.
		"2>lock,name:x\n", "2<ok\n",
	}},
	{"not-granted", []string{
		"0>lock,name:x\n", "0<ok\n",
		"1>lock,name:x\n", "1<not-granted\n", "1$",
		"2>lock,name:x,client-id:someone\n", "2<not-granted\n", "2$",
		"3>lock,name:y\n", "3<ok\n", // other names are independent
	}},
	{"client-id", []string{
		"0>lock,name:x,client-id:alice@host1\n", "0<ok\n",
		"1>lock,client-id:bob,name:x\n", "1<not-granted\n", "1$",
		"0>release\n", "0<released\n", "0$",
	}},
	{"crlf answered with lf", []string{
		"0>lock,name:x\r\n", "0<ok\n",
		"0>.keepalive\r\n", "0<alive\n",
		"0>.ping\r\n", "0<bad-action\n",
		"1>lock,name:x,client-id:b\r\n", "1<not-granted\n", "1$",
		"2>.ping\r\n", "2<pong\n", "2$",
		"3>lock,name:bad name\r\n", "3<err,invalid lock name\n", "3$",
		"4>nope\r\n", "4<bad-action\n", "4$",
		"5>\r\n", "5<bad-request\n", "5$",
		"0>release\r\n", "0<released\n", "0$",
	}},
	{"whitespace ignored", []string{
		"0> lock , name : x , client-id : y \n", "0<ok\n",
		"1>\tlock\t,name:x\t\n", "1<not-granted\n", "1$",
		"0> .keepalive \n", "0<alive\n",
		"0> release \n", "0<released\n", "0$",
	}},
	{"space4_is_ignored", []string{
		"0>lock,name: space4_is_ignored\n", "0<ok\n",
		// the same lock: the spaces are ignored, not part of the name
		"1>lock,name:space4_is_ignored\n", "1<not-granted\n", "1$",
		"0>release\n", "0<released\n", "0$",
	}},
	{"invalid name: contains space", []string{
		"0>lock,name: contains space\n", "0<err,invalid lock name\n", "0$",
	}},
	{"invalid name: contains%invalid%chars", []string{
		"0>lock,name:contains%invalid%chars\n", "0<err,invalid lock name\n", "0$",
	}},
	{"invalid name: .starts-with-dot", []string{
		"0>lock,name:.starts-with-dot\n", "0<err,invalid lock name\n", "0$",
	}},
	{"invalid name: 256 bytes", []string{
		"0>lock,name:" + strings.Repeat("n", 256) + "\n", "0<err,invalid lock name\n", "0$",
	}},
	{"invalid name: others", []string{
		"0>lock\n", "0<err,invalid lock name\n", "0$",
		"1>lock,name:\n", "1<err,invalid lock name\n", "1$",
		"2>lock,name:/abs\n", "2<err,invalid lock name\n", "2$",
		"3>lock,name:caf\xc3\xa9\n", "3<err,invalid lock name\n", "3$",
		"4>lock,name:a\x00b\n", "4<err,invalid lock name\n", "4$",
		"5>lock,name:a,b\n", "5<ok\n", // "b" is a key without value, ignored
	}},
	{"valid names", []string{
		"0>lock,name:" + strings.Repeat("n", 255) + "\n", "0<ok\n",
		"1>lock,name:Az09_-\n", "1<ok\n",
		"2>lock,name:a.b/c:d@e\n", "2<ok\n",
		"3>lock,name:-x\n", "3<ok\n",
		"4>lock,name:" + strings.Repeat("n", 255) + "\n", "4<not-granted\n", "4$",
	}},
	{"ping", []string{
		"0>.ping\n", "0<pong\n", "0$",
	}},
	{"unknown action", []string{
		"0>unlock,name:x\n", "0<bad-action\n", "0$",
		"1>LOCK,name:x\n", "1<bad-action\n", "1$", // actions are case-sensitive
		"2>.PING\n", "2<bad-action\n", "2$",
		"3>release\n", "3<bad-action\n", "3$", // nothing held yet
		"4>.keepalive\n", "4<bad-action\n", "4$",
		"5>ping\n", "5<bad-action\n", "5$",
		"6>lock,name:x\n", "6<ok\n", // none of the above took x
	}},
	{"malformed", []string{
		"0>\n", "0<bad-request\n", "0$",
		"1> \n", "1<bad-request\n", "1$",
		"2>,name:x\n", "2<bad-request\n", "2$",
		"3>lock,:x\n", "3<bad-request\n", "3$",
		"4>lock,name:x,\n", "4<bad-request\n", "4$",
		"5>lock,,name:x\n", "5<bad-request\n", "5$",
		"6>.ping,\n", "6<bad-request\n", "6$",
		"7>lock,name:x\n", "7<ok\n", // none of the above took x
	}},
	{"server-shutdown refused, server keeps serving", []string{
		"0>lock,name:x\n", "0<ok\n",
		"1>.server-shutdown\n", "1<bad-action\n", "1$",
		"2>.ping\n", "2<pong\n", "2$",
		"3>lock,name:x\n", "3<not-granted\n", "3$",
		"0>.keepalive\n", "0<alive\n",
	}},
	{"repeated key: the last wins, unknown keys ignored", []string{
		"0>lock,name:y,name:x,colour:blue\n", "0<ok\n",
		"1>lock,name:x\n", "1<not-granted\n", "1$",
		"2>lock,name:y\n", "2<ok\n",
	}},
	{"several requests in one write", []string{
		"0>lock,name:x\n.keepalive\n.ping\n.keepalive\nrelease\n",
		"0<ok\n", "0<alive\n", "0<bad-action\n", "0<alive\n", "0<released\n", "0$",
		// the server closes after pong: what follows is not answered
		"1>.ping\n.ping\n", "1<pong\n", "1$",
		"2>lock,name:x\nrelease\nlock,name:x\n", "2<ok\n", "2<released\n", "2$",
	}},
	{"request split over writes", []string{
		"0>lo", "0>ck,na", "0>me:x", "0>\n", "0<ok\n",
		"0>.keep", "0>alive\n", "0<alive\n",
		"0>rel", "0>ease\r", "0>\n", "0<released\n", "0$",
	}},
}

func TestLegacyTranscripts(t *testing.T) {
	for _, tc := range legacyScripts {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, server.Config{})
			script(t, ts.addr, tc.steps...)
		})
	}
}

// TestLegacyWhileHolding: any line other than .keepalive and release is
// answered bad-action and the lock stays held.
func TestLegacyWhileHolding(t *testing.T) {
	lines := []string{
		".ping\n", ".stats\n", "lock,name:x\n", "lock,name:y\n", "\n", "\r\n", " \n",
		"lock,\n", ",\n", "lock,:x\n", "foo\n", ".server-shutdown\n", ".session\n",
		".holders\n", ".quit\n", "release,\n", "\x00\xff\xfe junk \x01\n", "RELEASE\n",
		"lock,name:x,wait:5\n", "lock,name:.bad\n",
	}
	for _, park := range []bool{true, false} {
		name := "parked"
		if !park {
			name = "goroutine"
		}
		t.Run(name, func(t *testing.T) {
			ts := start(t, server.Config{}, options{noPark: !park})
			h := hold(t, ts.addr, "x")
			for _, l := range lines {
				h.send(l)
				h.expect("bad-action\n")
				refused(t, ts.addr, "x")
			}
			h.roundtrip(".keepalive\n", "alive\n")
			h.roundtrip("release\n", "released\n")
			h.expectEOF()
			hold(t, ts.addr, "x")
		})
	}
}

// TestLegacyStats: tcpnetlock's tests look for these five keys, written as
// json.dumps writes them.
func TestLegacyStats(t *testing.T) {
	ts := start(t, server.Config{})
	hold(t, ts.addr, "a")    // request 1, acquired
	refused(t, ts.addr, "a") // request 2, not acquired
	c := dial(t, ts.addr)
	c.roundtrip(".ping\n", "pong\n") // request 3
	c = dial(t, ts.addr)
	c.send(".stats\n") // request 4
	line, err := c.line()
	if err != nil || !strings.HasPrefix(line, "stats,{") || !strings.HasSuffix(line, "}\n") {
		t.Fatalf("got %q (err %v), want stats,{...}", line, err)
	}
	c.expectEOF()
	js := strings.TrimSuffix(strings.TrimPrefix(line, "stats,"), "\n")
	for _, k := range []string{"lock_count", "maxrss", "requests_count", "lock_acquired_count", "lock_not_acquired_count"} {
		if !strings.Contains(js, `"`+k+`": `) {
			t.Errorf("stats %s: no %q in {\"key\": value} style", js, k)
		}
	}
	if strings.Contains(js, `":"`) || strings.Contains(js, `,"`) {
		t.Errorf("stats %s: not in json.dumps style (\", \" and \": \")", js)
	}
	var m map[string]int64
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("stats %s: %v", js, err)
	}
	want := map[string]int64{"lock_count": 1, "requests_count": 4, "lock_acquired_count": 1, "lock_not_acquired_count": 1}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("stats %s = %d, want %d (%s)", k, m[k], v, js)
		}
	}
	if m["maxrss"] <= 0 {
		t.Errorf("stats maxrss = %d, want > 0", m["maxrss"])
	}
}
