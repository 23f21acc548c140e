package server_test

// Bounds on what one peer can make the server hold or do (issue 9): the
// length of a .holders answer, the memory a reader that does not read pins,
// the locks and waits of one session, the cost of many waits in one
// session, the log lines it can make the server repeat.

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/server"
)

// TestRefusalLogLimited: a flood of refused requests makes a few log lines
// a second and summaries that count the rest, exactly.
func TestRefusalLogLimited(t *testing.T) {
	const n = 200
	ts := start(t, server.Config{AuthToken: "s3cret"})
	t0 := time.Now()
	for range n {
		c := dial(t, ts.addr)
		c.roundtrip("lock,name:x\n", "err,authentication required\n")
		c.close()
	}
	windows := int(time.Since(t0)/time.Second) + 2 // those the flood touched, at most
	ts.stop(t)                                     // tells the summaries still due
	passed, suppressed := 0, 0
	sum := regexp.MustCompile(`msg="request refused: authentication required \((\d+) similar lines suppressed\)"`)
	for _, l := range strings.Split(ts.logs.String(), "\n") {
		if m := sum.FindStringSubmatch(l); m != nil {
			k, _ := strconv.Atoi(m[1])
			suppressed += k
		} else if strings.Contains(l, `msg="request refused: authentication required"`) {
			passed++
		}
	}
	if passed+suppressed != n || passed > 5*windows {
		t.Errorf("%d refusals: %d lines, %d told as suppressed; want %d in all, at most %d lines:\n%s", n, passed, suppressed, n, 5*windows, ts.logs.String())
	}
}
