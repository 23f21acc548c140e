package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/lib/client"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Server
		env  map[string]string
		want string
		err  string
	}{
		{name: "default", want: "127.0.0.1:7654"},
		{name: "flag", s: Server{Server: "locks:9000"}, want: "locks:9000"},
		{name: "flag without port", s: Server{Server: "locks"}, want: "locks:7654"},
		{name: "flag ipv6", s: Server{Server: "[::1]:9000"}, want: "[::1]:9000"},
		{name: "flag bare ipv6", s: Server{Server: "::1"}, want: "[::1]:7654"},
		{name: "flag bracketed ipv6 without port", s: Server{Server: "[::1]"}, want: "[::1]:7654"},
		{name: "flag empty host", s: Server{Server: ":9000"}, want: "127.0.0.1:9000"},
		{name: "flag beats env", s: Server{Server: "a:1"}, env: map[string]string{"TNL_SERVER": "b:2"}, want: "a:1"},
		{name: "TNL_SERVER", env: map[string]string{"TNL_SERVER": "b:2"}, want: "b:2"},
		{name: "TNL_SERVER beats TCPNETLOCK", env: map[string]string{"TNL_SERVER": "b:2", "TCPNETLOCK_HOST": "c", "TCPNETLOCK_PORT": "3"}, want: "b:2"},
		{name: "TCPNETLOCK both", env: map[string]string{"TCPNETLOCK_HOST": "c", "TCPNETLOCK_PORT": "3"}, want: "c:3"},
		{name: "TCPNETLOCK host only", env: map[string]string{"TCPNETLOCK_HOST": "c"}, want: "c:7654"},
		{name: "TCPNETLOCK port only", env: map[string]string{"TCPNETLOCK_PORT": "3"}, want: "127.0.0.1:3"},
		{name: "--host replaces host", s: Server{Server: "a:1", Host: "h"}, want: "h:1"},
		{name: "--port replaces port", s: Server{Server: "a:1", Port: 2}, want: "a:2"},
		{name: "--host --port beat env", s: Server{Host: "h", Port: 5}, env: map[string]string{"TNL_SERVER": "b:2"}, want: "h:5"},
		{name: "--host ipv6", s: Server{Host: "::1", Port: 5}, want: "[::1]:5"},
		{name: "bad port", s: Server{Server: "a:x"}, err: `--server "a:x": port must be a number from 1 to 65535`},
		{name: "port 0", s: Server{Server: "a:0"}, err: `--server "a:0": port must be a number from 1 to 65535`},
		{name: "bad --port", s: Server{Port: 70000}, err: `--port 70000: port must be a number from 1 to 65535`},
		{name: "bad TNL_SERVER", env: map[string]string{"TNL_SERVER": "a:b:c"}, err: `$TNL_SERVER "a:b:c": want HOST:PORT`},
		{name: "bad TCPNETLOCK_PORT", env: map[string]string{"TCPNETLOCK_PORT": "p"}, err: `$TCPNETLOCK_PORT "p": port must be a number from 1 to 65535`},
	} {
		got, err := tc.s.Resolve(env(tc.env))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			} else if exitcode.Of(err) != exitcode.Usage {
				t.Errorf("%s: status %d, want 2", tc.name, exitcode.Of(err))
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestDuration: the flag type reads what protocol.ParseDuration reads
// (its own test has the whole table), drops white space around it, and
// says what is wrong in a command's words.
func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"0", 0, ""},
		{"2", 2 * time.Second, ""},
		{"0.5", 500 * time.Millisecond, ""},
		{"0.3", 300 * time.Millisecond, ""}, // rounded, not truncated to 299.999999ms
		{"30s", 30 * time.Second, ""},
		{" 30s\n", 30 * time.Second, ""},
		{"5m", 5 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"9223372036", 9223372036 * time.Second, ""},
		{"-1", 0, `invalid duration "-1": must not be negative`},
		{"-5s", 0, `invalid duration "-5s": must not be negative`},
		{"abc", 0, `invalid duration "abc": want 30s, 5m, 1h30m or a number of seconds`},
		{"", 0, `invalid duration "": want 30s, 5m, 1h30m or a number of seconds`},
		{"1e300", 0, `invalid duration "1e300": want 30s, 5m, 1h30m or a number of seconds`},
		{"9223372036.854775808", 0, `invalid duration "9223372036.854775808": too large`}, // 2^63 ns
	} {
		var d Duration
		err := d.UnmarshalText([]byte(tc.in))
		if got := fmt.Sprint(err); (tc.err == "" && err != nil) || (tc.err != "" && got != tc.err) || time.Duration(d) != tc.want {
			t.Errorf("Duration(%q) = %v, %v; want %v, %q", tc.in, time.Duration(d), err, tc.want, tc.err)
		}
	}
}

func TestWait(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Wait
		err  bool
	}{
		{"inf", Wait{Inf: true}, false},
		{"INF", Wait{Inf: true}, false},
		{"infinity", Wait{Inf: true}, false},
		{"3", Wait{D: 3 * time.Second}, false},
		{"1m", Wait{D: time.Minute}, false},
		{"soon", Wait{}, true},
		{"1000000000", Wait{D: 1e9 * time.Second}, false},
		{"1000000001", Wait{}, true}, // over the server's bound: use inf
		{"9223372036.8547", Wait{}, true},
		{"", Wait{}, false},
	} {
		var w Wait
		err := w.UnmarshalText([]byte(tc.in))
		if (err != nil) != tc.err || w != tc.want {
			t.Errorf("Wait(%q) = %v, %v; want %v, err=%v", tc.in, w, err, tc.want, tc.err)
		}
	}
}

func TestLockCheck(t *testing.T) {
	ok := Lock{Limit: 1, ConflictExitCode: 123}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []Lock{
		{Limit: 0, ConflictExitCode: 123},
		{Limit: 1000001, ConflictExitCode: 123},
		{Limit: 1, ConflictExitCode: 256},
		{Limit: 1, ConflictExitCode: -1},
		{Limit: 2, Shared: true, ConflictExitCode: 123},
	} {
		if err := l.Check(); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("Check(%+v) = %v, want a usage error", l, err)
		}
	}
}

type grammar struct {
	Version kong.VersionFlag
	Client
	Lock
	Name string `arg:""`
}

func TestParse(t *testing.T) {
	var out, errb strings.Builder
	run := func(args ...string) (*grammar, bool, error) {
		var g grammar
		out.Reset()
		errb.Reset()
		p, err := New("tnl-x", "test", &g, &out, &errb, "1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		_, done, err := Parse(p, args)
		return &g, done, err
	}

	t.Setenv("TNL_WAIT", "")
	t.Setenv("TNL_CLIENT_ID", "")
	t.Setenv("TCPNETLOCK_CLIENT_ID", "")
	g, done, err := run("-w", "2", "--shared", "-E", "7", "-v", "n")
	if err != nil || done {
		t.Fatal(err, done)
	}
	if g.Wait != (Wait{D: 2 * time.Second}) || !g.Shared || g.ConflictExitCode != 7 || !g.IsVerbose() || g.Name != "n" || g.Limit != 1 {
		t.Errorf("parsed %+v", g)
	}

	// tcpnetlock spellings.
	g, _, err = run("--host", "h", "--port", "9", "--client-id", "me", "--keep-alive", "--keep-alive-secs", "5", "--debug", "n")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := g.Resolve(env(nil)); a != "h:9" || g.ID() != "me" || !g.IsVerbose() {
		t.Errorf("parsed %+v", g)
	}

	// Variables.
	t.Setenv("TNL_WAIT", "inf")
	t.Setenv("TCPNETLOCK_CLIENT_ID", "tcp")
	g, _, err = run("n")
	if err != nil || !g.Wait.Inf || g.ID() != "tcp" {
		t.Errorf("env: %+v %v", g, err)
	}
	t.Setenv("TNL_CLIENT_ID", "tnl")
	if g, _, _ = run("n"); g.ID() != "tnl" {
		t.Errorf("TNL_CLIENT_ID must win over TCPNETLOCK_CLIENT_ID, got %q", g.ID())
	}
	t.Setenv("TNL_WAIT", "")

	// --help and --version: done, status 0, output on stdout.
	_, done, err = run("--version")
	if !done || err != nil || out.String() != "tnl-x 1.2.3\n" {
		t.Errorf("--version: done=%v err=%v out=%q", done, err, out.String())
	}
	_, done, err = run("--help")
	if !done || err != nil || !strings.Contains(out.String(), "--conflict-exit-code") {
		t.Errorf("--help: done=%v err=%v out=%q", done, err, out.String())
	}

	// Usage errors: status 2, a hint.
	_, _, err = run("-w", "soon", "n")
	if exitcode.Of(err) != 2 || exitcode.HintOf(err) != "see tnl-x --help" {
		t.Errorf("bad wait: %v (%d)", err, exitcode.Of(err))
	}
	_, _, err = run()
	if exitcode.Of(err) != 2 {
		t.Errorf("missing arg: %v", err)
	}
	var e *exitcode.Error
	if !errors.As(err, &e) {
		t.Errorf("not an *exitcode.Error: %T", err)
	}
}

func TestVersion(t *testing.T) {
	if VersionString("v1.0.0") != "v1.0.0" {
		t.Error("linked version must win")
	}
	if VersionString("") == "" {
		t.Error("empty fallback")
	}
}

// TestResolveIDDefault: with nothing set, the commands send the client's
// own default, so that a Go program and a command look alike.
func TestResolveIDDefault(t *testing.T) {
	t.Setenv("USER", "alice")
	var c Client
	if got, want := c.ResolveID(env(nil)), client.DefaultID(); got != want || !strings.HasPrefix(got, "alice@") {
		t.Errorf("ResolveID() = %q; want client.DefaultID() = %q", got, want)
	}
}

func TestLockOptions(t *testing.T) {
	l := Lock{Wait: Wait{Inf: true}, Shared: true, Limit: 1}
	if o := l.LockOptions(); o.Wait != client.Forever || !o.Shared || !l.Waits() {
		t.Errorf("inf: %+v", o)
	}
	l = Lock{Wait: Wait{D: 2 * time.Second}, Limit: 3}
	if o := l.LockOptions(); o.Wait != 2*time.Second || o.Limit != 3 || !l.Waits() {
		t.Errorf("2s: %+v", o)
	}
	if (&Lock{}).Waits() {
		t.Error("zero Lock waits")
	}
}
