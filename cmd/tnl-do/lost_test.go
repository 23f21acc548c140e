package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/supervise"
	"github.com/tnl-lock/tnl/test/deadline"
)

// TestMain doubles as tnl-do: with TNL_DO_AS_MAIN=1 the test binary is
// tnl-do, so that a test runs it as a process of its own, with its
// watchdog (which StartWatchdog runs as /proc/self/exe: this binary).
func TestMain(m *testing.M) {
	if supervise.IsWatchdog(os.Args[1:]) {
		os.Exit(supervise.RunWatchdog(os.Args[1]))
	}
	if os.Getenv("TNL_DO_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestMaxHoldLost: tnl-do --max-hold sends max-hold:, and when the server
// takes the lock away at the cap (lost with why) while the command runs,
// tnl-do stops the command as on any loss, says the server's why, and
// exits 122.
func TestMaxHoldLost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lines := make(chan string, 16)
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		conns <- c
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			switch {
			case line == ".keepalive\n":
				io.WriteString(c, "alive\n")
			case strings.HasPrefix(line, ".session,"):
				io.WriteString(c, "session,dead-peer-timeout:30\n")
			case line == "lock,name:x,max-hold:2\n":
				io.WriteString(c, "ok,name:x,token:7\n")
				lines <- line
			default:
				lines <- line
			}
		}
	}()
	cmd := exec.Command(os.Args[0], "-s", l.Addr().String(), "--max-hold", "2s", "x", "--", "sh", "-c", `echo "started $TNL_FENCE"; exec sleep 60`)
	cmd.Env = append(os.Environ(), "TNL_DO_AS_MAIN=1", "TNL_WAIT=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if got := deadline.Within(t, 10*time.Second, lines, "the lock request"); got != "lock,name:x,max-hold:2\n" {
		t.Fatalf("sent %q", got)
	}
	started := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		started <- s
	}()
	if got := deadline.Within(t, 10*time.Second, started, "the command to start"); got != "started 7\n" {
		t.Fatalf("command said %q", got)
	}
	io.WriteString(<-conns, "lost,name:x,why:maximum hold of 2s reached\n")
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	err = deadline.Within(t, 20*time.Second, exited, "tnl-do to exit")
	want := "tnl-do: lock x lost: maximum hold of 2s reached on server " + l.Addr().String() + "; stopping the command (SIGTERM, SIGKILL after 10s)\n"
	if code := cmd.ProcessState.ExitCode(); code != 122 || stderr.String() != want {
		t.Fatalf("tnl-do: %v, status %d, stderr %q\nwant 122, %q", err, code, stderr.String(), want)
	}
}
