package test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNetnsKillDeadline: issue 9 §3. A command that ignores SIGTERM runs
// under tnl-do with its defaults (--on-lost term, --kill-after 10s) against
// a server with --dead-peer-timeout 10s, and the client's host vanishes (a
// partition: no FIN, no RST). tnl-do must have the command killed before
// the server can give the lock to anyone else, with a margin: the gap from
// the command's death to the next grant, printed, is at least 1/8 of the
// timeout. Before, SIGKILL came at half the timeout + --kill-after (15s),
// 5.9s after the next grant.
//
//   - partition: the server releases the lock about 9/10 of the timeout
//     after the last packet from the client; tnl-do kills by 3/4 of it.
//   - server restart: the server is also killed (kill -9) during the
//     partition and started again at once, without --state-dir, with
//     --restart-grace 10s: the grace must apply, and the command die before
//     it ends (before, the overlap was 3.5s).
//
// Both run in parallel with each other and with the other parallel tests:
// together about 12s.
func TestNetnsKillDeadline(t *testing.T) {
	t.Parallel()
	for _, restart := range []bool{false, true} {
		name := "partition"
		if restart {
			name = "server restart"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			netnsKillDeadline(t, restart)
		})
	}
}

func netnsKillDeadline(t *testing.T, restart bool) {
	const deadPeer = 10 * time.Second
	lab := newNSLab(t, 1)
	records := filepath.Join(t.TempDir(), "records")
	args := []string{"--listen", lab.ServerIP[0] + ":0", "--dead-peer-timeout", deadPeer.String()}
	srv := chaosStartServer(t, lab.Exec(lab.Server), args...)

	// The command: child.sh records a line every 10ms, also for ten
	// minutes after SIGTERM; only SIGKILL ends it. tnl-do's defaults.
	holder := nsStart(t, append(lab.Exec(lab.Clients[0]), filepath.Join(bins(t), "tnl-do"), "-v", "-s", srv.Addr, "deadline", "--",
		"bash", chaosChild(t), records, "holder", "600000", "600000"))
	var child int
	if !chaosWait(10*time.Second, func() bool {
		recs, _ := chaosReadRecords(records)
		if len(recs) >= 3 {
			child = recs[0].PID
		}
		return child != 0
	}) {
		t.Fatalf("the command did not start within 10s:\n%s", holder.Output())
	}
	died := watchDeath(t, child)

	// The next client waits next to the server, in its namespace.
	probe := func(queued string) *nsProc {
		p := nsStart(t, append(lab.Exec(lab.Server), filepath.Join(bins(t), "tnl-lock"), "-v", "-w", "inf", "-s", srv.Addr, "deadline"))
		if _, ok := p.Expect("err", queued, 10*time.Second); !ok {
			t.Fatalf("the probe did not queue:\n%s", p.Output())
		}
		return p
	}
	var next *nsProc
	if !restart {
		next = probe("waiting for deadline") // behind the holder
	}

	tCut := time.Now()
	if err := lab.Cut(lab.Clients[0]); err != nil {
		t.Fatal(err)
	}
	if restart {
		srv.Kill()
		args[1] = srv.Addr // the same port
		srv = chaosStartServer(t, lab.Exec(lab.Server), append(args, "--restart-grace", deadPeer.String())...)
		// No holder to wait behind, the grace: it asks and waits.
		next = probe("connected to")
	}
	grant, ok := next.Expect("out", "", deadPeer+10*time.Second)
	if !ok {
		t.Fatalf("no grant within %v of the cut:\nprobe:\n%s\nserver:\n%s", deadPeer+10*time.Second, next.Output(), srv.Log())
	}
	var dead time.Time
	select {
	case dead = <-died:
	case <-time.After(10 * time.Second):
		t.Fatalf("the command still runs 10s after the next grant:\n%s", holder.Output())
	}
	code, exited := holder.Wait(10 * time.Second)
	gap := grant.at.Sub(dead)
	g := nsLast(t, records)

	msg := fmt.Sprintf("netns: %s: command killed %s after the cut (SIGTERM at %s), next grant %s after the cut: gap %s (want >= %s); tnl-do exit %d; cut by %s",
		map[bool]string{false: "partition", true: "partition + server kill -9 + restart (--restart-grace 10s)"}[restart],
		secs(dead.Sub(tCut)), secs(g.SigTerm.Sub(tCut)), secs(grant.at.Sub(tCut)), secs(gap), secs(deadPeer/8), code, lab.How)
	t.Log(msg)
	fmt.Println(msg)

	if gap < deadPeer/8 {
		t.Errorf("from the command's death to the next grant: %s, want at least 1/8 of the dead-peer timeout (%s)", secs(gap), secs(deadPeer/8))
	}
	if !g.Stop.Before(grant.at) {
		t.Errorf("the command's last write (%s after the cut) is not before the next grant", secs(g.Stop.Sub(tCut)))
	}
	if !exited || code != 122 {
		t.Errorf("tnl-do: exited %v, status %d, want 122:\n%s", exited, code, holder.Output())
	}
	if _, ok := holder.Expect("err", "tnl-do: warning: --kill-after 10s cut to ", 0); !ok {
		t.Errorf("tnl-do did not warn that --kill-after was cut:\n%s", holder.Output())
	}
	if restart && (!strings.Contains(srv.Log(), "granting no lock for the restart grace (--restart-grace given)") || !strings.Contains(srv.Log(), "for=10s")) {
		t.Errorf("the restarted server did not log its grace:\n%s", srv.Log())
	}
	next.stdin.Close()
}

// watchDeath returns a channel that gets the time process pid ends (a
// pidfd: the netns test hosts share the test's pid namespace).
func watchDeath(t *testing.T, pid int) <-chan time.Time {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	c := make(chan time.Time, 1)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			// No deadline here: the test waits on c with its own, and the
			// cleanup kills the process at the latest.
			if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		c <- time.Now()
	}()
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) // this very process, never a reused pid
		<-polled
		unix.Close(fd)
	})
	return c
}
