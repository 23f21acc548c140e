// Partition tests: a peer that vanishes without FIN or RST (issue 5;
// CONTRACT.md §4). They need root and network namespaces: a namespace for
// the server and one per client host, each client linked to the server by
// a veth pair of its own. Addresses are 10.77.N.1 (server side) and
// 10.77.N.2 (client side), which exist only inside these namespaces: no
// namespace has a default route and the host's own namespace has none of
// these addresses, so no packet leaves them. A "cut" drops every packet of
// one namespace, silently (nftables, else iptables, else the veth is set
// down): to the other side the host has vanished.
package test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nsLab is a set of network namespaces made by one test.
type nsLab struct {
	t        *testing.T
	Server   string   // the server's namespace
	Clients  []string // one namespace per client host
	ServerIP []string // the server's address as client i sees it
	How      string   // how a cut is made: nft, iptables or link
}

var nsSeq atomic.Int32

// nsPrefix is the start of every namespace name this process makes; a
// crashed run's leftovers are recognised by its dead pid.
const nsPrefix = "tnlt"

// newNSLab makes a server namespace and n client namespaces, removed at the
// end of the test. It skips the test, with one line, when network
// namespaces cannot be had here.
func newNSLab(t *testing.T, n int) *nsLab {
	t.Helper()
	lab, why := tryNSLab(t, n)
	if lab == nil {
		t.Skip("netns: skipped: " + why)
	}
	return lab
}

// tryNSLab is newNSLab, or nil and why network namespaces cannot be had.
func tryNSLab(t *testing.T, n int) (*nsLab, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, "needs root to create network namespaces"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, "no ip command (apt-get install iproute2)"
	}
	nsSweep()
	base := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), nsSeq.Add(1))
	lab := &nsLab{t: t, Server: base + "-s"}
	if out, err := exec.Command("ip", "netns", "add", lab.Server).CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("cannot create a network namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		// Processes inside were ended by their own cleanups, which run
		// before this one (registered later).
		for _, ns := range append([]string{lab.Server}, lab.Clients...) {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	lab.run("ip", "-n", lab.Server, "link", "set", "lo", "up")
	for i := range n {
		ns := fmt.Sprintf("%s-c%d", base, i)
		lab.run("ip", "netns", "add", ns)
		lab.Clients = append(lab.Clients, ns)
		sv, cv := fmt.Sprintf("sv%d", i), fmt.Sprintf("cv%d", i)
		sip, cip := fmt.Sprintf("10.77.%d.1", i), fmt.Sprintf("10.77.%d.2", i)
		lab.ServerIP = append(lab.ServerIP, sip)
		lab.run("ip", "-n", lab.Server, "link", "add", sv, "type", "veth", "peer", "name", cv, "netns", ns)
		lab.run("ip", "-n", lab.Server, "addr", "add", sip+"/30", "dev", sv)
		lab.run("ip", "-n", ns, "addr", "add", cip+"/30", "dev", cv)
		lab.run("ip", "-n", lab.Server, "link", "set", sv, "up")
		lab.run("ip", "-n", ns, "link", "set", cv, "up")
		lab.run("ip", "-n", ns, "link", "set", "lo", "up")
	}
	switch how := os.Getenv("TNL_NETNS_CUT"); {
	case how == "nft" || how == "iptables" || how == "link": // to try each way by hand
		lab.How = how
	case exec.Command("ip", "netns", "exec", lab.Server, "nft", "list", "tables").Run() == nil:
		lab.How = "nft"
	case exec.Command("ip", "netns", "exec", lab.Server, "iptables", "-w", "-S").Run() == nil:
		lab.How = "iptables"
	default:
		lab.How = "link"
	}
	return lab, ""
}

// nsSweep removes namespaces left by runs of this test that died.
func nsSweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

func (l *nsLab) run(argv ...string) {
	l.t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// Exec is the prefix that runs a command in namespace ns.
func (l *nsLab) Exec(ns string) []string { return []string{"ip", "netns", "exec", ns} }

// links are the veth ends inside ns.
func (l *nsLab) links(ns string) []string {
	if ns == l.Server {
		var out []string
		for i := range l.Clients {
			out = append(out, fmt.Sprintf("sv%d", i))
		}
		return out
	}
	for i, c := range l.Clients {
		if c == ns {
			return []string{fmt.Sprintf("cv%d", i)}
		}
	}
	l.t.Fatalf("no namespace %s", ns)
	return nil
}

const nsCutRules = `table inet tnlcut {
	chain in { type filter hook input priority -300; policy drop; iif "lo" accept; }
	chain out { type filter hook output priority -300; policy drop; oif "lo" accept; }
}
`

// Cut drops every packet into and out of ns, except on its loopback.
func (l *nsLab) Cut(ns string) error {
	switch l.How {
	case "nft":
		return nsNft(ns, nsCutRules)
	case "iptables":
		if err := nsDrop(ns, "INPUT"); err != nil {
			return err
		}
		return nsDrop(ns, "OUTPUT")
	default:
		for _, dev := range l.links(ns) {
			if err := nsErr(exec.Command("ip", "-n", ns, "link", "set", dev, "down")); err != nil {
				return err
			}
		}
		return nil
	}
}

// nsNft loads nft rules into ns.
func nsNft(ns, rules string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	return nsErr(cmd)
}

// nsDrop puts an iptables rule first in chain (INPUT or OUTPUT) of ns that
// drops every packet but those on its loopback.
func nsDrop(ns, chain string) error {
	dir := "-i"
	if chain == "OUTPUT" {
		dir = "-o"
	}
	return nsErr(exec.Command("ip", "netns", "exec", ns, "iptables", "-w", "-I", chain, "1", "!", dir, "lo", "-j", "DROP"))
}

// Heal undoes Cut.
func (l *nsLab) Heal(ns string) error {
	switch l.How {
	case "nft":
		return nsErr(exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "tnlcut"))
	case "iptables":
		if err := nsErr(exec.Command("ip", "netns", "exec", ns, "iptables", "-w", "-D", "INPUT", "!", "-i", "lo", "-j", "DROP")); err != nil {
			return err
		}
		return nsErr(exec.Command("ip", "netns", "exec", ns, "iptables", "-w", "-D", "OUTPUT", "!", "-o", "lo", "-j", "DROP"))
	default:
		for _, dev := range l.links(ns) {
			if err := nsErr(exec.Command("ip", "-n", ns, "link", "set", dev, "up")); err != nil {
				return err
			}
		}
		return nil
	}
}

func nsErr(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nsProc is a client process (tnl-do, tnl-lock) whose output lines are
// collected with the time each arrived.
type nsProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan struct{}
	exitAt time.Time
	code   int

	mu    sync.Mutex
	lines []nsLine
	cond  chan struct{} // closed and replaced on every new line
}

type nsLine struct {
	stream string // "out" or "err"
	text   string
	at     time.Time
}

func nsStart(t *testing.T, argv []string, env ...string) *nsProc {
	t.Helper()
	p := &nsProc{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{}), cond: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "LC_ALL=C"), env...)
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		r    io.Reader
	}{{"out", stdout}, {"err", stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(s.r)
			for sc.Scan() {
				p.mu.Lock()
				p.lines = append(p.lines, nsLine{s.name, sc.Text(), time.Now()})
				close(p.cond)
				p.cond = make(chan struct{})
				p.mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		p.cmd.Wait()
		p.exitAt = time.Now()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: its output still open 10s after it was killed", argv)
		}
	})
	return p
}

// Expect waits up to d for a line of stream that contains substr, and
// returns it.
func (p *nsProc) Expect(stream, substr string, d time.Duration) (nsLine, bool) {
	deadline := time.After(d)
	i := 0
	scan := func() (nsLine, bool, chan struct{}) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for ; i < len(p.lines); i++ {
			if l := p.lines[i]; l.stream == stream && strings.Contains(l.text, substr) {
				return l, true, nil
			}
		}
		return nsLine{}, false, p.cond
	}
	for {
		l, ok, cond := scan()
		if ok {
			return l, true
		}
		select {
		case <-cond:
		case <-p.done: // every line is in: one last look
			l, ok, _ := scan()
			return l, ok
		case <-deadline:
			return nsLine{}, false
		}
	}
}

// Output is everything the process wrote.
func (p *nsProc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		fmt.Fprintf(&b, "%s: %s\n", l.stream, l.text)
	}
	return b.String()
}

// Wait waits up to d for the process to exit and returns its status.
func (p *nsProc) Wait(d time.Duration) (int, bool) {
	select {
	case <-p.done:
		return p.code, true
	case <-time.After(d):
		return 0, false
	}
}

// nsHolder starts, in the client namespace, tnl-do holding name and running
// child.sh, and waits for the child's first lines.
func nsHolder(t *testing.T, lab *nsLab, addr, name, records string, killAfter time.Duration) *nsProc {
	t.Helper()
	tnlDo := filepath.Join(bins(t), "tnl-do")
	argv := append(lab.Exec(lab.Clients[0]), tnlDo, "-v", "--kill-after", killAfter.String(), "-s", addr, name, "--",
		"bash", chaosChild(t), records, "holder", "600000", "200")
	p := nsStart(t, argv)
	if !chaosWait(10*time.Second, func() bool {
		recs, _ := chaosReadRecords(records)
		return len(recs) >= 3
	}) {
		t.Fatalf("the holder's command did not start within 10s:\n%s", p.Output())
	}
	return p
}

// nsLast returns the holder's grant from the records.
func nsLast(t *testing.T, records string) *chaosGrant {
	t.Helper()
	recs, err := chaosReadRecords(records)
	if err != nil {
		t.Fatal(err)
	}
	r := chaosCheck(recs)
	if len(r.Grants) != 1 || len(r.Problems) > 0 {
		t.Fatalf("records: %d grants, problems %q", len(r.Grants), r.Problems)
	}
	return r.Grants[0]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// TestNetnsClientVanishes: the client's host vanishes without FIN or RST
// while its tnl-do holds a lock and runs a command. The server frees the
// lock within --dead-peer-timeout (+1 s), measured from the cut: a probe
// waiting in the server's namespace gets it. By then the vanished side's
// tnl-do has already stopped its command (its last write is earlier than
// the release) and exited 122, having declared the lock lost after half the
// timeout without a word from the server.
func TestNetnsClientVanishes(t *testing.T) {
	const deadPeer = 3 * time.Second
	const killAfter = 500 * time.Millisecond
	lab := newNSLab(t, 1)
	records := filepath.Join(t.TempDir(), "records")
	srv := chaosStartServer(t, lab.Exec(lab.Server), "--listen", lab.ServerIP[0]+":0", "--dead-peer-timeout", deadPeer.String())
	holder := nsHolder(t, lab, srv.Addr, "vanish", records, killAfter)

	// The probe waits in the queue, next to the server.
	probe := nsStart(t, append(lab.Exec(lab.Server), filepath.Join(bins(t), "tnl-lock"), "-v", "-w", "inf", "-s", srv.Addr, "vanish"))
	if _, ok := probe.Expect("err", "waiting for vanish", 10*time.Second); !ok {
		t.Fatalf("the probe did not queue:\n%s", probe.Output())
	}

	tCut := time.Now()
	if err := lab.Cut(lab.Clients[0]); err != nil {
		t.Fatal(err)
	}
	grant, ok := probe.Expect("out", "", deadPeer+5*time.Second)
	if !ok {
		t.Fatalf("the server did not free the lock within %v of the cut:\nprobe:\n%s\nserver:\n%s", deadPeer+5*time.Second, probe.Output(), srv.Log())
	}
	released := grant.at.Sub(tCut)
	code, exited := holder.Wait(10 * time.Second)
	g := nsLast(t, records)
	stopped := g.Stop.Sub(tCut)
	detected := g.SigTerm.Sub(tCut)

	msg := fmt.Sprintf("netns: server released after %s (timeout %s); client stopped child after %s (declared lost after %s, --kill-after %s); tnl-do exit %d; cut by %s",
		secs(released), secs(deadPeer), secs(stopped), secs(detected), secs(killAfter), code, lab.How)
	t.Log(msg)
	fmt.Println(msg)

	if released > deadPeer+time.Second {
		t.Errorf("the server freed the lock %v after the cut, more than --dead-peer-timeout %v + 1s", released, deadPeer)
	}
	if !exited || code != 122 {
		t.Errorf("the vanished side's tnl-do: exited %v, status %d, want 122:\n%s", exited, code, holder.Output())
	}
	if g.SigTerm.IsZero() || g.Ended != "term" {
		t.Errorf("the command was not stopped by SIGTERM (ended %q):\n%s", g.Ended, holder.Output())
	}
	if !g.Stop.Before(grant.at) {
		t.Errorf("the command's last write (%s after the cut) is not before the server's release (%s)", secs(stopped), secs(released))
	}
	if exited && !holder.exitAt.Before(grant.at) {
		t.Errorf("tnl-do exited %s after the cut, not before the server's release (%s)", secs(holder.exitAt.Sub(tCut)), secs(released))
	}
	if _, ok := holder.Expect("err", "no word from server", 0); !ok {
		t.Errorf("tnl-do did not say it lost the lock to silence:\n%s", holder.Output())
	}
	if tok, err := strconv.ParseUint(strings.TrimSpace(grant.text), 10, 64); err != nil || tok <= g.Token {
		t.Errorf("the probe's token %q is not above the vanished holder's %d", grant.text, g.Token)
	}
	probe.stdin.Close()
}

// TestNetnsServerVanishes: the server's host vanishes for a client that
// holds a lock: the client declares the lock lost within half the dead-peer
// timeout (+ a margin for scheduling), stops its command and exits 122.
func TestNetnsServerVanishes(t *testing.T) {
	const deadPeer = 3 * time.Second
	const killAfter = 500 * time.Millisecond
	const margin = 500 * time.Millisecond
	lab := newNSLab(t, 1)
	records := filepath.Join(t.TempDir(), "records")
	srv := chaosStartServer(t, lab.Exec(lab.Server), "--listen", lab.ServerIP[0]+":0", "--dead-peer-timeout", deadPeer.String())
	holder := nsHolder(t, lab, srv.Addr, "gone", records, killAfter)

	tCut := time.Now()
	if err := lab.Cut(lab.Server); err != nil {
		t.Fatal(err)
	}
	lost, ok := holder.Expect("err", "lost", deadPeer+5*time.Second)
	if !ok {
		t.Fatalf("tnl-do did not declare the lock lost within %v:\n%s", deadPeer+5*time.Second, holder.Output())
	}
	code, exited := holder.Wait(10 * time.Second)
	g := nsLast(t, records)
	declared := lost.at.Sub(tCut)

	msg := fmt.Sprintf("netns: server vanished; client declared the lock lost after %s (half the timeout: %s), child stopped after %s; tnl-do exit %d; cut by %s",
		secs(declared), secs(deadPeer/2), secs(g.Stop.Sub(tCut)), code, lab.How)
	t.Log(msg)
	fmt.Println(msg)

	if declared > deadPeer/2+margin {
		t.Errorf("tnl-do declared the lock lost %v after the cut, more than half the dead-peer timeout (%v) + %v", declared, deadPeer/2, margin)
	}
	if !strings.Contains(lost.text, "no word from server") {
		t.Errorf("tnl-do lost the lock for another reason than silence: %q", lost.text)
	}
	if !exited || code != 122 {
		t.Errorf("tnl-do: exited %v, status %d, want 122:\n%s", exited, code, holder.Output())
	}
	if g.Ended != "term" || g.SigTerm.Sub(tCut) > deadPeer/2+margin {
		t.Errorf("the command: ended %q, SIGTERM %v after the cut", g.Ended, g.SigTerm.Sub(tCut))
	}
}
