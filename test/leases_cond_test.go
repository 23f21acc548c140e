package test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// serverKnowsLeases is the script condition [leases]: whether the
// tnl-server built for this run knows leases, asked once of a server of
// its own: ".is-held" of an unknown id is "err,no such lease" on a server
// with leases, "bad-action" on one without. The lease_*.txtar scripts skip
// while it is false, so that they can be written before the server has
// leases; once it has, the guard is dead and can go.
var serverKnowsLeases = sync.OnceValues(func() (bool, error) {
	cmd := exec.Command(filepath.Join(binDir, "tnl-server"), "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return false, err
	}
	if err := cmd.Start(); err != nil {
		return false, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addrc := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if m := listening.FindStringSubmatch(s.Text()); m != nil {
				addrc <- m[1]
				break
			}
		}
		close(addrc)
		for s.Scan() { // keep the pipe drained until the server exits
		}
	}()
	var addr string
	select {
	case a, ok := <-addrc:
		if !ok {
			return false, errors.New("tnl-server exited before listening")
		}
		addr = a
	case <-time.After(10 * time.Second):
		return false, errors.New("tnl-server did not say where it listens within 10s")
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprint(c, ".is-held,lease:00000000000000000000000000000000\n"); err != nil {
		return false, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	switch {
	case err != nil:
		return false, err
	case line == "bad-action\n":
		return false, nil
	case line == "err,no such lease\n":
		return true, nil
	}
	return false, fmt.Errorf(".is-held of an unknown lease answered %q", line)
})

// scriptCondition answers the conditions of TestCLI's scripts beyond
// testscript's own.
func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "leases":
		return serverKnowsLeases()
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}
