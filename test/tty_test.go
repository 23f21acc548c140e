package test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The terminal tests drive tnl-do on a real pseudo-terminal, as a person at
// a terminal would: an interactive bash with job control, or a shell without
// it, runs tnl-do in the foreground.

// openPTY returns the controlling side and the terminal side of a new pty.
func openPTY(t *testing.T) (ctrl, tty *os.File) {
	t.Helper()
	ctrl, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skip("no pty:", err)
	}
	fd := int(ctrl.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ctrl, tty
}

// term is a program running as the session leader of a pty.
type term struct {
	t    *testing.T
	ctrl *os.File
	cmd  *exec.Cmd

	mu  sync.Mutex
	out bytes.Buffer // everything the terminal showed
	pos int          // how far expect has read
	eof chan struct{}
}

func startTerm(t *testing.T, env []string, name string, args ...string) *term {
	t.Helper()
	ctrl, tty := openPTY(t)
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.Env = env
	cmd.Dir = t.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	tm := &term{t: t, ctrl: ctrl, cmd: cmd, eof: make(chan struct{})}
	go func() {
		r := bufio.NewReader(ctrl)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			if err != nil {
				close(tm.eof)
				return
			}
		}
	}()
	t.Cleanup(func() {
		// Everything in the terminal's session goes: a process stopped in
		// the background would keep the terminal open for ever.
		killSession(cmd.Process.Pid)
		cmd.Wait()
		ctrl.Close()
		select {
		case <-tm.eof:
		case <-time.After(5 * time.Second):
			t.Error("the terminal stayed open")
		}
		if t.Failed() {
			tm.mu.Lock()
			t.Logf("terminal showed:\n%s", tm.out.String())
			tm.mu.Unlock()
		}
	})
	return tm
}

// killSession kills every process of session sid (and a second time, for
// those that forked meanwhile).
func killSession(sid int) {
	for range 2 {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if s, err := unix.Getsid(pid); err == nil && s == sid {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// waitEOF waits until the terminal has no process left.
func (tm *term) waitEOF() {
	tm.t.Helper()
	select {
	case <-tm.eof:
	case <-time.After(10 * time.Second):
		tm.t.Fatal("the terminal is still open after 10s")
	}
}

func (tm *term) send(s string) {
	tm.t.Helper()
	if _, err := tm.ctrl.WriteString(s); err != nil {
		tm.t.Fatal(err)
	}
}

// expect waits until the terminal shows a match for re after what earlier
// expects consumed, and returns the submatches.
func (tm *term) expect(re string) []string {
	tm.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		tm.mu.Lock()
		rest := tm.out.Bytes()[tm.pos:]
		if loc := rx.FindSubmatchIndex(rest); loc != nil {
			var subs []string
			for i := 0; i+1 < len(loc); i += 2 {
				if loc[i] >= 0 {
					subs = append(subs, string(rest[loc[i]:loc[i+1]]))
				} else {
					subs = append(subs, "")
				}
			}
			tm.pos += loc[1]
			tm.mu.Unlock()
			return subs
		}
		tm.mu.Unlock()
		if time.Now().After(deadline) {
			tm.t.Fatalf("terminal did not show /%s/ within 10s", re)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ttyEnv is the environment of the terminal tests: the binaries first in
// PATH, a server, a plain prompt.
func ttyEnv(t *testing.T) []string {
	dir := bins(t)
	addr := startTestServer(t)
	return []string{
		"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"TNL_SERVER=" + addr,
		"TERM=dumb",
		"PS1=PROMPT> ",
		"HOME=" + t.TempDir(),
		"USER=tester",
	}
}

// startTestServer runs tnl-server on 127.0.0.1:0 for one Go test.
func startTestServer(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "tnl-server"), "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrc := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if m := listening.FindStringSubmatch(s.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	select {
	case a := <-addrc:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("tnl-server did not say where it listens")
	}
	return ""
}

// In an interactive bash with job control: the command reads the terminal
// (it is not stopped by SIGTTIN), Ctrl-C reaches it once, Ctrl-Z stops the
// job and fg continues it with the terminal, and bash gets the terminal back.
func TestTerminalJobControl(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	tm := startTerm(t, ttyEnv(t), "bash", "--norc", "--noprofile", "-i")
	tm.expect(`PROMPT> $`)

	// A command that reads the terminal.
	tm.send("tnl-do x -- bash -c 'echo rea''dy; read v; echo got:$v'\n")
	tm.expect(`ready\r\n`)
	tm.send("hello\n")
	tm.expect(`got:hello\r\n`)
	tm.expect(`PROMPT> $`)
	tm.send("echo rc=$?\n")
	tm.expect(`rc=0\r\n`)

	// Ctrl-C goes from the terminal to the command's group only: its trap
	// runs once; it then reads on.
	tm.send("tnl-do x -- bash -c 'trap \"echo got-INT\" INT; echo rea''dy; read v; echo after:$v; exit 7'\n")
	tm.expect(`ready\r\n`)
	tm.send("\x03")
	tm.expect(`got-INT\r\n`)
	tm.send("more\n")
	tm.expect(`after:more\r\n`)
	tm.expect(`PROMPT> $`)
	tm.mu.Lock()
	n := strings.Count(tm.out.String(), "got-INT")
	tm.mu.Unlock()
	if n != 1 {
		t.Errorf("the trap ran %d times, want 1", n)
	}
	tm.send("echo rc=$?\n")
	tm.expect(`rc=7\r\n`)

	// Ctrl-C kills a command without a trap: 130.
	tm.send("tnl-do x -- bash -c 'echo rea''dy; read v'\n")
	tm.expect(`ready\r\n`)
	tm.send("\x03")
	tm.expect(`PROMPT> $`)
	tm.send("echo rc=$?\n")
	tm.expect(`rc=130\r\n`)

	// Ctrl-Z: the job stops, bash gets the terminal; fg gives it back to
	// the command, which reads on.
	tm.send("tnl-do x -- bash -c 'echo rea''dy; read v; echo got:$v'\n")
	tm.expect(`ready\r\n`)
	tm.send("\x1a")
	tm.expect(`Stopped.*\r\n`)
	tm.expect(`PROMPT> $`)
	tm.send("jobs\n")
	tm.expect(`Stopped`)
	tm.expect(`PROMPT> $`)
	tm.send("fg\n")
	tm.expect(`tnl-do x`)
	tm.send("again\n")
	tm.expect(`got:again\r\n`)
	tm.expect(`PROMPT> $`)
	tm.send("echo rc=$?\n")
	tm.expect(`rc=0\r\n`)

	// The lock was released each time: someone else gets it now.
	tm.send("tnl-do x -- echo free\n")
	tm.expect(`free\r\n`)
	tm.send("exit\n")
	tm.waitEOF()
}

// Without job control (a script run by "bash -c" on a terminal): the
// command can read the terminal, and once it exits tnl-do gives the terminal
// back, so the script can read it too.
func TestTerminalNoJobControl(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script := `tnl-do x -- bash -c 'echo rea''dy; read v; echo got:$v'; echo rc=$?; read w; echo after:$w`
	tm := startTerm(t, ttyEnv(t), "bash", "--norc", "--noprofile", "-c", script)
	tm.expect(`ready\r\n`)
	tm.send("one\n")
	tm.expect(`got:one\r\n`)
	tm.expect(`rc=0\r\n`)
	tm.send("two\n")
	tm.expect(`after:two\r\n`)
	tm.waitEOF()
	if err := tm.cmd.Wait(); err != nil {
		t.Errorf("bash: %v", err)
	}
}

// tnl-do as the session leader itself (ssh host tnl-do ...): the command
// reads the terminal; a Ctrl-Z, which nobody could undo here, is undone.
func TestTerminalSessionLeader(t *testing.T) {
	tm := startTerm(t, ttyEnv(t), filepath.Join(bins(t), "tnl-do"), "x", "--", "bash", "--norc", "-c",
		`trap 'echo got-CONT' CONT; echo rea''dy; read v; echo got:$v`)
	tm.expect(`ready\r\n`)
	tm.send("\x1a")
	tm.expect(`got-CONT\r\n`)
	tm.send("three\n")
	tm.expect(`got:three\r\n`)
	tm.waitEOF()
	err := tm.cmd.Wait()
	if err != nil {
		t.Errorf("tnl-do: %v", err)
	}
}
