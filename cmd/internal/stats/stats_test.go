package stats

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/lib/client"
)

// holdersAnswer has what the table and the JSON must show: two names out
// of order, a semaphore, a waiter, a holder without client id or host, and
// strings that JSON escapes.
const holdersAnswer = `holders,{"locks":[` +
	`{"name":"zeta","mode":"shared","limit":1,"token":9,"holders":[` +
	`{"client_id":"a<b>","host":"h1","pid":42,"addr":"127.0.0.1:5000","mode":"shared","since":"2020-01-02T03:04:05.123456789Z","token":8},` +
	`{"client_id":"","host":"","pid":0,"addr":"10.0.0.1:1","mode":"shared","since":"2020-01-02T03:04:06Z","token":9}],"waiters":[]},` +
	`{"name":"alpha","mode":"exclusive","limit":3,"token":4,"holders":[],"waiters":[` +
	`{"client_id":"w\u2028","host":"h2","pid":7,"addr":"127.0.0.1:5001","mode":"exclusive","since":"2020-01-02T03:04:07Z"}]}` +
	`],"truncated":true}` + "\n"

// fakeServer answers a session with the lines given for .holders and .stats.
func fakeServer(t *testing.T, holders, stats string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(line, ".session"):
				io.WriteString(c, "session,dead-peer-timeout:30\n")
			case strings.HasPrefix(line, ".holders"):
				io.WriteString(c, holders)
			case strings.HasPrefix(line, ".stats"):
				io.WriteString(c, stats)
			case line == ".keepalive\n":
				io.WriteString(c, "alive\n")
			}
		}
	}()
	return l.Addr().String()
}

const wantJSON = `{
  "server": "ADDR",
  "time": "2020-01-02T03:04:10Z",
  "locks": [
    {
      "name": "alpha",
      "mode": "exclusive",
      "limit": 3,
      "token": 4,
      "holders": [],
      "waiters": [
        {
          "client_id": "w\u2028",
          "host": "h2",
          "pid": 7,
          "addr": "127.0.0.1:5001",
          "mode": "exclusive",
          "since": "2020-01-02T03:04:07Z"
        }
      ]
    },
    {
      "name": "zeta",
      "mode": "shared",
      "limit": 1,
      "token": 9,
      "holders": [
        {
          "client_id": "a\u003cb\u003e",
          "host": "h1",
          "pid": 42,
          "addr": "127.0.0.1:5000",
          "mode": "shared",
          "since": "2020-01-02T03:04:05.123456789Z",
          "token": 8
        },
        {
          "client_id": "",
          "host": "",
          "pid": 0,
          "addr": "10.0.0.1:1",
          "mode": "shared",
          "since": "2020-01-02T03:04:06Z",
          "token": 9
        }
      ],
      "waiters": []
    }
  ],
  "truncated": true,
  "stats": {
    "lock_count": 2,
    "maxrss": 100,
    "requests_count": 5
  }
}
`

const wantTable = "NAME   MODE                 STATE   CLIENT  HOST        PID  SINCE              TOKEN\n" +
	"alpha  exclusive (limit 3)  wait 1  w\u2028      h2          7    03:04:07 (3s ago)  -\n" +
	"zeta   shared               held    a<b>    h1          42   03:04:05 (5s ago)  8\n" +
	"zeta   shared               held    -       10.0.0.1:1  -    03:04:06 (4s ago)  9\n" +
	"(the server cut the list short; tnl-stats NAME lists one lock)\n" +
	"\n" +
	"SERVER ADDR\n" +
	"lock_count      2\n" +
	"maxrss          100\n" +
	"requests_count  5\n"

// TestOutputBytes: the JSON and the table, byte for byte.
func TestOutputBytes(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC // the table shows local times
	now := time.Date(2020, 1, 2, 3, 4, 10, 0, time.UTC)
	stats := `stats,{"lock_count": 2, "maxrss": 100, "requests_count": 5}` + "\n"
	checkOutput(t, holdersAnswer, stats, now, wantJSON, wantTable)
}

// checkOutput runs tnl-stats, as --json and as a table, against a server
// that answers holders and stats, and wants exactly wantJSON and wantTable
// (the server's address written ADDR).
func checkOutput(t *testing.T, holders, stats string, now time.Time, wantJSON, wantTable string) {
	t.Helper()
	for _, tc := range []struct {
		json bool
		want string
	}{
		{true, wantJSON},
		{false, wantTable},
	} {
		addr := fakeServer(t, holders, stats)
		var out bytes.Buffer
		err := Run(context.Background(), Config{Dial: client.Options{Addr: addr}, Timeout: 10 * time.Second,
			JSON: tc.json, Now: func() time.Time { return now }}, &out)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ReplaceAll(out.String(), addr, "ADDR"); got != tc.want {
			t.Errorf("json %v: got\n%s\nwant\n%s", tc.json, got, tc.want)
		}
	}
}

// TestOutputEmpty: nothing held, and a server that sends no lists: still
// arrays and an object, never null.
func TestOutputEmpty(t *testing.T) {
	now := time.Date(2020, 1, 2, 3, 4, 10, 0, time.UTC)
	for _, tc := range []struct {
		holders, stats string
		json           bool
		want           string
		names          []string
	}{
		{`holders,{"locks":[]}` + "\n", "stats,{}\n", false, "no locks are held or awaited on ADDR\n\nSERVER ADDR\n", nil},
		{`holders,{"locks":[]}` + "\n", "stats,{\"lock_count\": 0}\n", false,
			"NAME  MODE  STATE  CLIENT  HOST  PID  SINCE  TOKEN\nfree  -     free   -       -     -    -      -\n\nSERVER ADDR\nlock_count  0\n", []string{"free"}},
		{`holders,{"locks":[]}` + "\n", "stats,{}\n", true,
			"{\n  \"server\": \"ADDR\",\n  \"time\": \"2020-01-02T03:04:10Z\",\n  \"locks\": [],\n  \"truncated\": false,\n  \"stats\": {}\n}\n", nil},
		{`holders,{"locks":[{"name":"x","mode":"exclusive","limit":1,"token":1}]}` + "\n", "stats,{}\n", true,
			"{\n  \"server\": \"ADDR\",\n  \"time\": \"2020-01-02T03:04:10Z\",\n  \"locks\": [\n    {\n      \"name\": \"x\",\n      \"mode\": \"exclusive\",\n" +
				"      \"limit\": 1,\n      \"token\": 1,\n      \"holders\": [],\n      \"waiters\": []\n    }\n  ],\n  \"truncated\": false,\n  \"stats\": {}\n}\n", nil},
	} {
		addr := fakeServer(t, tc.holders, tc.stats)
		var out bytes.Buffer
		err := Run(context.Background(), Config{Dial: client.Options{Addr: addr}, Timeout: 10 * time.Second,
			JSON: tc.json, Names: tc.names, Now: func() time.Time { return now }}, &out)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ReplaceAll(out.String(), addr, "ADDR"); got != tc.want {
			t.Errorf("got\n%q\nwant\n%q", got, tc.want)
		}
	}
}

// TestUnreadableHolders: a server that sends no holders list is 125.
func TestUnreadableHolders(t *testing.T) {
	addr := fakeServer(t, "holders,{\"locks\":7}\n", "stats,{}\n")
	err := Run(context.Background(), Config{Dial: client.Options{Addr: addr}, Timeout: 10 * time.Second}, io.Discard)
	if code := exitcode.Of(err); code != exitcode.Unreachable || !strings.HasPrefix(err.Error(), "cannot read the holders from "+addr+": ") {
		t.Fatalf("err = %v (status %d)", err, code)
	}
}

// leaseAnswer has a lease holder (no address, a fingerprint), a holder
// under a maximum hold, one without an end, and a waiter.
const leaseAnswer = `holders,{"locks":[` +
	`{"name":"deploy","mode":"exclusive","limit":1,"token":21,"holders":[` +
	`{"client_id":"cron@etl-1","host":"etl-1","pid":977,"addr":"","mode":"exclusive","since":"2020-01-02T03:03:10Z","token":21,"expires":"2020-01-02T05:03:09.9Z","lease":"ab12cd34"}],"waiters":[` +
	`{"client_id":"bob","host":"h2","pid":7,"addr":"127.0.0.1:5001","mode":"exclusive","since":"2020-01-02T03:04:07Z"}]},` +
	`{"name":"cache","mode":"shared","limit":1,"token":30,"holders":[` +
	`{"client_id":"a","host":"h1","pid":42,"addr":"127.0.0.1:5000","mode":"shared","since":"2020-01-02T03:04:05Z","token":29,"expires":"2020-01-02T03:08:35Z"},` +
	`{"client_id":"b","host":"h3","pid":43,"addr":"127.0.0.1:5002","mode":"shared","since":"2020-01-02T03:04:06Z","token":30}]}` +
	`]}` + "\n"

const wantLeaseTable = "NAME    MODE       STATE   CLIENT      HOST   PID             SINCE                EXPIRES   TOKEN\n" +
	"cache   shared     held    a           h1     42              03:04:05 (5s ago)    in 4m25s  29\n" +
	"cache   shared     held    b           h3     43              03:04:06 (4s ago)    -         30\n" +
	"deploy  exclusive  held    cron@etl-1  etl-1  lease:ab12cd34  03:03:10 (1m0s ago)  in 1h58m  21\n" +
	"deploy  exclusive  wait 1  bob         h2     7               03:04:07 (3s ago)    -         -\n" +
	"\n" +
	"SERVER ADDR\n" +
	"lease_expired_count  1\n" +
	"leases               1\n"

const wantLeaseJSON = `{
  "server": "ADDR",
  "time": "2020-01-02T03:04:10Z",
  "locks": [
    {
      "name": "cache",
      "mode": "shared",
      "limit": 1,
      "token": 30,
      "holders": [
        {
          "client_id": "a",
          "host": "h1",
          "pid": 42,
          "addr": "127.0.0.1:5000",
          "mode": "shared",
          "since": "2020-01-02T03:04:05Z",
          "token": 29,
          "expires": "2020-01-02T03:08:35Z"
        },
        {
          "client_id": "b",
          "host": "h3",
          "pid": 43,
          "addr": "127.0.0.1:5002",
          "mode": "shared",
          "since": "2020-01-02T03:04:06Z",
          "token": 30
        }
      ],
      "waiters": []
    },
    {
      "name": "deploy",
      "mode": "exclusive",
      "limit": 1,
      "token": 21,
      "holders": [
        {
          "client_id": "cron@etl-1",
          "host": "etl-1",
          "pid": 977,
          "addr": "",
          "mode": "exclusive",
          "since": "2020-01-02T03:03:10Z",
          "token": 21,
          "expires": "2020-01-02T05:03:09.9Z",
          "lease": "ab12cd34"
        }
      ],
      "waiters": [
        {
          "client_id": "bob",
          "host": "h2",
          "pid": 7,
          "addr": "127.0.0.1:5001",
          "mode": "exclusive",
          "since": "2020-01-02T03:04:07Z"
        }
      ]
    }
  ],
  "truncated": false,
  "stats": {
    "lease_expired_count": 1,
    "leases": 1
  }
}
`

// TestOutputLeases: a lease holder shows its fingerprint where a pid would
// be, and every party its end, in an EXPIRES column that only a table with
// an end has; --json passes the schema's expires and lease through.
func TestOutputLeases(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC
	now := time.Date(2020, 1, 2, 3, 4, 10, 0, time.UTC)
	stats := `stats,{"leases": 1, "lease_expired_count": 1}` + "\n"
	checkOutput(t, leaseAnswer, stats, now, wantLeaseJSON, wantLeaseTable)
}
