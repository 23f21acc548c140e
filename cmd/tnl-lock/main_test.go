package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
)

const testLease = "5f0c8e7a1b2d4c6e8f90a1b2c3d4e5f6"

// fake is a scripted server: it answers the session request, heartbeats,
// and each other line with what answers says for it (bad-action when it
// says nothing), and keeps every line it read but the heartbeats.
type fake struct {
	addr  string
	conn  chan net.Conn // each accepted connection, for unprompted lines
	mu    sync.Mutex
	lines []string
}

func fakeServer(t *testing.T, answers map[string]string) *fake {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fake{addr: l.Addr().String(), conn: make(chan net.Conn, 4)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			f.conn <- c
			go f.serve(c, answers)
		}
	}()
	return f
}

func (f *fake) serve(c net.Conn, answers map[string]string) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if line == ".keepalive\n" {
			io.WriteString(c, "alive\n")
			continue
		}
		// Kept before the answer: the command may be done once it has it.
		f.mu.Lock()
		f.lines = append(f.lines, line)
		f.mu.Unlock()
		switch {
		case strings.HasPrefix(line, ".session,"):
			io.WriteString(c, "session,dead-peer-timeout:30\n")
		case answers[line] != "":
			io.WriteString(c, answers[line])
		default:
			io.WriteString(c, "bad-action\n")
		}
	}
}

func (f *fake) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lines)
}

// session is the session request tnl-lock sends as --client-id me.
func session() string {
	host, _ := os.Hostname()
	return ".session,client-id:me,host:" + host + ",pid:" + strconv.Itoa(os.Getpid()) + "\n"
}

// runLock runs tnl-lock as main would, with stdin, and returns its
// status, standard output and standard error.
func runLock(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := exitcode.Print(&errb, prog, lock(args, stdin, &out, &errb))
	return code, out.String(), errb.String()
}

// TestLeaseCommands: tnl-lock --ttl, --renew, --release and --is-held,
// with the exact lines sent and the exact output and status.
func TestLeaseCommands(t *testing.T) {
	t.Setenv("TNL_WAIT", "")
	t.Setenv("TNL_LEASE", "")
	exports := "export TNL_LEASE='" + testLease + "'\nexport TNL_FENCE='21'\nexport TNL_LOCK='deploy'\n"
	noSuch := "err,no such lease\n"
	for _, tc := range []struct {
		name    string
		env     string // $TNL_LEASE
		args    []string
		answers map[string]string
		sent    []string // after the session request
		code    int
		stdout  string
		stderr  string
	}{
		{name: "ttl", args: []string{"--ttl", "2h", "deploy"},
			answers: map[string]string{"lock,name:deploy,ttl:7200\n": "ok,name:deploy,token:21,lease:" + testLease + ",ttl:7200\n"},
			sent:    []string{"lock,name:deploy,ttl:7200\n"}, stdout: exports},
		{name: "ttl wait shared max-hold", args: []string{"--ttl", "90m", "-w", "30s", "--shared", "--max-hold", "24h", "deploy"},
			answers: map[string]string{"lock,name:deploy,ttl:5400,wait:30,mode:shared,max-hold:86400\n": "ok,name:deploy,token:21,lease:" + testLease + ",ttl:5400\n"},
			sent:    []string{"lock,name:deploy,ttl:5400,wait:30,mode:shared,max-hold:86400\n"}, stdout: exports},
		{name: "ttl limit", args: []string{"--ttl", "1.5", "--limit", "3", "deploy"},
			answers: map[string]string{"lock,name:deploy,ttl:1.5,limit:3\n": "ok,name:deploy,token:21,lease:" + testLease + ",ttl:1.5\n"},
			sent:    []string{"lock,name:deploy,ttl:1.5,limit:3\n"}, stdout: exports},
		{name: "ttl not granted", args: []string{"--ttl", "2h", "deploy"},
			answers: map[string]string{"lock,name:deploy,ttl:7200\n": "not-granted,name:deploy\n"},
			sent:    []string{"lock,name:deploy,ttl:7200\n"}, code: 123},
		{name: "renew", args: []string{"--renew", "--lease", testLease},
			answers: map[string]string{".renew,lease:" + testLease + "\n": "renewed,name:deploy,token:21,ttl:7200\n"},
			sent:    []string{".renew,lease:" + testLease + "\n"}},
		{name: "renew ttl env -v", env: testLease, args: []string{"--renew", "--ttl", "10m", "-v"},
			answers: map[string]string{".renew,lease:" + testLease + ",ttl:600\n": "renewed,name:deploy,token:21,ttl:599.999\n"},
			sent:    []string{".renew,lease:" + testLease + ",ttl:600\n"},
			stderr:  "tnl-lock: renewed the lease of deploy (token 21): 9m59s left\n"},
		{name: "renew gone", env: testLease, args: []string{"--renew"},
			answers: map[string]string{".renew,lease:" + testLease + "\n": noSuch},
			sent:    []string{".renew,lease:" + testLease + "\n"}, code: 122,
			stderr: "tnl-lock: lease not held: no such lease\n"},
		{name: "release", env: testLease, args: []string{"--release"},
			answers: map[string]string{".release,lease:" + testLease + "\n": "released,name:deploy\n"},
			sent:    []string{".release,lease:" + testLease + "\n"}},
		{name: "release gone", env: testLease, args: []string{"--release"},
			answers: map[string]string{".release,lease:" + testLease + "\n": noSuch},
			sent:    []string{".release,lease:" + testLease + "\n"}, code: 122,
			stderr: "tnl-lock: lease not held: no such lease\n"},
		{name: "release named", env: testLease, args: []string{"--release", "deploy"},
			answers: map[string]string{
				".is-held,lease:" + testLease + "\n": "held,name:deploy,token:21,ttl:60\n",
				".release,lease:" + testLease + "\n": "released,name:deploy\n"},
			sent: []string{".is-held,lease:" + testLease + "\n", ".release,lease:" + testLease + "\n"}},
		{name: "release other name", env: testLease, args: []string{"--release", "build"},
			answers: map[string]string{".is-held,lease:" + testLease + "\n": "held,name:deploy,token:21,ttl:60\n"},
			sent:    []string{".is-held,lease:" + testLease + "\n"}, code: 122,
			stderr: "tnl-lock: lease not held: it is a lease of deploy, not of build\n"},
		{name: "is-held", env: testLease, args: []string{"--is-held"},
			answers: map[string]string{".is-held,lease:" + testLease + "\n": "held,name:deploy,token:21,ttl:7134.512\n"},
			sent:    []string{".is-held,lease:" + testLease + "\n"}},
		{name: "is-held -v", args: []string{"--is-held", "-v", "--lease", testLease},
			answers: map[string]string{".is-held,lease:" + testLease + "\n": "held,name:deploy,token:21,ttl:7134.512\n"},
			sent:    []string{".is-held,lease:" + testLease + "\n"},
			stderr:  "tnl-lock: the lease of deploy is held (token 21): 1h58m54s left\n"},
		{name: "is-held gone", env: testLease, args: []string{"--is-held"},
			answers: map[string]string{".is-held,lease:" + testLease + "\n": noSuch},
			sent:    []string{".is-held,lease:" + testLease + "\n"}, code: 122},
		{name: "is-held gone -v", env: testLease, args: []string{"--is-held", "-v"},
			answers: map[string]string{".is-held,lease:" + testLease + "\n": noSuch},
			sent:    []string{".is-held,lease:" + testLease + "\n"}, code: 122,
			stderr: "tnl-lock: lease not held: no such lease\n"},
		{name: "is-held other name", env: testLease, args: []string{"--is-held", "build"},
			answers: map[string]string{".is-held,lease:" + testLease + "\n": "held,name:deploy,token:21,ttl:60\n"},
			sent:    []string{".is-held,lease:" + testLease + "\n"}, code: 122},
		{name: "is-held refused", env: testLease, args: []string{"--is-held"},
			answers: map[string]string{".is-held,lease:" + testLease + "\n": "err,lease state not durable: disk full\n"},
			sent:    []string{".is-held,lease:" + testLease + "\n"}, code: 125,
			stderr: "tnl-lock: server refused: lease state not durable: disk full\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TNL_LEASE", tc.env)
			f := fakeServer(t, tc.answers)
			args := append([]string{"-s", f.addr, "--client-id", "me"}, tc.args...)
			code, stdout, stderr := runLock(t, strings.NewReader(""), args...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("tnl-lock %q: status %d, stdout %q, stderr %q\nwant %d, %q, %q", tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
			want := append([]string{session()}, tc.sent...)
			if got := f.sent(); !slices.Equal(got, want) {
				t.Errorf("sent %q\nwant %q", got, want)
			}
		})
	}
}

// TestLeaseUsage: lease command lines that are wrong say so, with status
// 2, before anything is sent.
func TestLeaseUsage(t *testing.T) {
	t.Setenv("TNL_WAIT", "")
	for _, tc := range []struct {
		env    string
		args   []string
		stderr string
	}{
		{"", []string{"--renew"}, "tnl-lock: no lease: give --lease ID or set $TNL_LEASE\ntnl-lock: hint: eval \"$(tnl-lock --ttl DURATION NAME)\" sets it\n"},
		{"", []string{"--is-held"}, "tnl-lock: no lease: give --lease ID or set $TNL_LEASE\ntnl-lock: hint: eval \"$(tnl-lock --ttl DURATION NAME)\" sets it\n"},
		{"nope", []string{"--release"}, "tnl-lock: $TNL_LEASE: not a lease id: want 32 lowercase hex digits\n"},
		{"", []string{"--release", "--lease", "ABC"}, "tnl-lock: --lease: not a lease id: want 32 lowercase hex digits\n"},
		{testLease, []string{"--release", "--renew"}, "tnl-lock: --renew, --release and --is-held: give one\n"},
		{testLease, []string{"--release", "--ttl", "1h"}, "tnl-lock: --ttl is for taking a lease and for --renew\n"},
		{testLease, []string{"--is-held", "--shared"}, "tnl-lock: --shared, --limit, --max-hold and --lost-deadline are for taking a lock, not for --renew, --release or --is-held\n"},
		{"", []string{"--lease", testLease, "x"}, "tnl-lock: --lease is for --renew, --release and --is-held\n"},
		{"", []string{"--ttl", "1h", "--lost-deadline", "x"}, "tnl-lock: --lost-deadline is for a held lock, not a lease (--ttl)\n"},
		{"", []string{"--ttl", "367d", "x"}, "tnl-lock: --ttl: invalid duration \"367d\": want 30s, 5m, 1h30m or a number of seconds\ntnl-lock: hint: see tnl-lock --help\n"},
		{"", []string{"--ttl", "9000h", "x"}, "tnl-lock: --ttl 9000h0m0s: must be from 1ms to 366 days\n"},
		{"", []string{"--max-hold", "0.0001", "x"}, "tnl-lock: --max-hold 100µs: must be from 1ms to 366 days\n"},
		{"", []string{"--ttl", "1h"}, "tnl-lock: expected \"<name>\"\ntnl-lock: hint: see tnl-lock --help\n"},
		{"", []string{}, "tnl-lock: expected \"<name>\"\ntnl-lock: hint: see tnl-lock --help\n"},
	} {
		t.Setenv("TNL_LEASE", tc.env)
		code, stdout, stderr := runLock(t, strings.NewReader(""), append([]string{"-s", "127.0.0.1:1"}, tc.args...)...)
		if code != 2 || stdout != "" || stderr != tc.stderr {
			t.Errorf("tnl-lock %q ($TNL_LEASE %q): status %d, stdout %q, stderr %q\nwant 2, \"\", %q", tc.args, tc.env, code, stdout, stderr, tc.stderr)
		}
	}
}

// TestLeaseUnreachable: no server, status 125 and the reason.
func TestLeaseUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("TNL_WAIT", "")
	for _, args := range [][]string{{"--is-held", "--lease", testLease}, {"--ttl", "1h", "x"}} {
		code, stdout, stderr := runLock(t, strings.NewReader(""), append([]string{"-s", addr}, args...)...)
		want := "tnl-lock: cannot reach server " + addr + ": connection refused\n"
		if code != 125 || stdout != "" || stderr != want {
			t.Errorf("tnl-lock %q: status %d, stdout %q, stderr %q\nwant 125, \"\", %q", args, code, stdout, stderr, want)
		}
	}
}

// TestMaxHoldLost: a connection-bound hold under --max-hold sends it, and
// its loss at the cap says the server's why, with status 122.
func TestMaxHoldLost(t *testing.T) {
	t.Setenv("TNL_WAIT", "")
	// The loss comes right behind the grant, as from a server whose cap
	// is tiny.
	f := fakeServer(t, map[string]string{"lock,name:x,max-hold:2\n": "ok,name:x,token:5\nlost,name:x,why:maximum hold of 2s reached\n"})
	stdin, w := io.Pipe() // the input never ends
	defer w.Close()
	code, stdout, stderr := runLock(t, stdin, "-s", f.addr, "--client-id", "me", "--max-hold", "2s", "x")
	want := "tnl-lock: lock x lost: maximum hold of 2s reached on server " + f.addr + "\n"
	if code != 122 || stdout != "5\n" || stderr != want {
		t.Errorf("status %d, stdout %q, stderr %q\nwant 122, \"5\\n\", %q", code, stdout, stderr, want)
	}
}

// TestLeaseOldServer: a server that predates leases answers .is-held
// bad-action: status 125, and a line that says so.
func TestLeaseOldServer(t *testing.T) {
	t.Setenv("TNL_WAIT", "")
	f := fakeServer(t, nil)
	code, stdout, stderr := runLock(t, strings.NewReader(""), "-s", f.addr, "--is-held", "--lease", testLease)
	want := "tnl-lock: lease: server " + f.addr + " does not know .is-held (it answered bad-action): it predates it\n"
	if code != 125 || stdout != "" || stderr != want {
		t.Errorf("status %d, stdout %q, stderr %q\nwant 125, \"\", %q", code, stdout, stderr, want)
	}
}
