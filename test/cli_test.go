// Package test holds the end-to-end tests of tnl's command-line tools: the
// real binaries, built once per test run (buildOnce, shared with the other
// tests of this package), against a real tnl-server that each script starts
// on 127.0.0.1:0.
//
// Scripts are testscript files in testdata/. Besides testscript's own
// commands they have:
//
//	server start [FLAG...]   start tnl-server on 127.0.0.1:0 and wait for its
//	                         "listening" line; sets $TNL_SERVER, $SRV_HOST,
//	                         $SRV_PORT, $SRV_PID; its log is $WORK/server.log
//	server kill|term|stop|cont
//	                         SIGKILL (and reap), SIGTERM (and reap), SIGSTOP,
//	                         SIGCONT the server
//	waitfor [-t DUR] FILE [REGEXP]
//	                         wait until FILE exists (and matches REGEXP)
//	exec rc [-p PIDFILE] WANT PROG [ARG...]
//	                         run PROG, fail unless it exits with status WANT
//	                         (a signal death never matches); -p writes PROG's
//	                         pid to PIDFILE once it runs
//	gencerts                 write a fresh CA (ca.pem), a server certificate
//	                         for 127.0.0.1 (server.pem, server.key) and a
//	                         client certificate (client.pem, client.key)
//	                         signed by it, and another CA (other-ca.pem),
//	                         into $WORK
//
// Bash choreography inside a script sources $TNL_TEST_LIB (testdata/lib.bash)
// for waitfor, gone and now_ms; $TNL_SH is shell/tnl.sh. Nothing sleeps to synchronise: everything
// waits for a line in a file, with a deadline.
package test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
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

	"github.com/rogpeppe/go-internal/testscript"
)

// binDir holds the binaries built by TestMain.
var binDir string

// buildOnce builds the four binaries, the way the Makefile does, into the
// directory it returns, and the rc helper into its helpers/ subdirectory,
// once per test binary run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tnl-test-bin")
	if err != nil {
		return "", err
	}
	if err := buildRC(filepath.Join(dir, "helpers")); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=test", "-o", dir+"/",
		"./cmd/tnl-do", "./cmd/tnl-lock", "./cmd/tnl-stats", "./cmd/tnl-server")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	// Set here, once: bins is called from parallel tests.
	binDir = dir
	return dir, nil
})

func bins(t *testing.T) string {
	t.Helper()
	dir, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCLI(t *testing.T) {
	dir := bins(t)
	lib, err := filepath.Abs("testdata/lib.bash")
	if err != nil {
		t.Fatal(err)
	}
	tnlsh, err := filepath.Abs("../shell/tnl.sh")
	if err != nil {
		t.Fatal(err)
	}
	// A script that hangs fails within two minutes, not at go test's
	// ten-minute default; the whole suite takes seconds.
	deadline := time.Now().Add(2 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Deadline:            deadline,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", dir+string(os.PathListSeparator)+filepath.Join(dir, "helpers")+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("TNL_TEST_LIB", lib)
			env.Setenv("TNL_SH", tnlsh)
			env.Setenv("USER", "tester")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"server":   cmdServer,
			"waitfor":  cmdWaitfor,
			"gencerts": cmdGencerts,
		},
	})
}

// servers holds each script's running server.
var servers sync.Map // *testscript.TestScript -> *exec.Cmd

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

func cmdServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: server start [FLAG...] | kill | term | stop | cont")
	}
	if args[0] == "start" {
		startServer(ts, args[1:])
		return
	}
	v, ok := servers.Load(ts)
	if !ok {
		ts.Fatalf("no server started")
	}
	cmd := v.(*exec.Cmd)
	sig := map[string]syscall.Signal{"kill": syscall.SIGKILL, "term": syscall.SIGTERM, "stop": syscall.SIGSTOP, "cont": syscall.SIGCONT}[args[0]]
	if sig == 0 {
		ts.Fatalf("unknown server action %q", args[0])
	}
	ts.Check(cmd.Process.Signal(sig))
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		cmd.Wait()
		servers.Delete(ts)
	}
}

func startServer(ts *testscript.TestScript, flags []string) {
	if _, ok := servers.Load(ts); ok {
		ts.Fatalf("a server is running already")
	}
	args := append([]string{"--listen", "127.0.0.1:0"}, flags...)
	cmd := exec.Command(filepath.Join(binDir, "tnl-server"), args...)
	cmd.Dir = ts.Getenv("WORK") // relative paths in FLAGs are the script's
	logf, err := os.Create(ts.MkAbs("server.log"))
	ts.Check(err)
	pr, pw, err := os.Pipe()
	ts.Check(err)
	cmd.Stderr = pw
	cmd.Stdout = logf
	ts.Check(cmd.Start())
	pw.Close()
	servers.Store(ts, cmd)
	ts.Defer(func() {
		if v, ok := servers.LoadAndDelete(ts); ok {
			c := v.(*exec.Cmd)
			c.Process.Signal(syscall.SIGCONT)
			c.Process.Kill()
			c.Wait()
		}
		logf.Close()
	})
	addrc := make(chan string, 1)
	go func() {
		// Copy the log to server.log, and pick the address from the
		// "listening" line on the way.
		s := bufio.NewScanner(pr)
		found := false
		for s.Scan() {
			fmt.Fprintln(logf, s.Text())
			if m := listening.FindStringSubmatch(s.Text()); m != nil && !found {
				found = true
				addrc <- m[1]
			}
		}
		pr.Close()
		if !found {
			close(addrc)
		}
	}()
	select {
	case addr, ok := <-addrc:
		if !ok {
			b, _ := os.ReadFile(ts.MkAbs("server.log"))
			ts.Fatalf("tnl-server exited before listening:\n%s", b)
		}
		host, port, _ := strings.Cut(addr, ":")
		ts.Setenv("TNL_SERVER", addr)
		ts.Setenv("SRV_HOST", host)
		ts.Setenv("SRV_PORT", port)
		ts.Setenv("SRV_PID", strconv.Itoa(cmd.Process.Pid))
	case <-time.After(10 * time.Second):
		ts.Fatalf("tnl-server did not say where it listens within 10s")
	}
}

func cmdWaitfor(ts *testscript.TestScript, neg bool, args []string) {
	timeout := 10 * time.Second
	if len(args) > 1 && args[0] == "-t" {
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		timeout, args = d, args[2:]
	}
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitfor [-t DURATION] FILE [REGEXP]")
	}
	var re *regexp.Regexp
	if len(args) == 2 {
		re = regexp.MustCompile("(?m)" + args[1])
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil && (re == nil || re.Match(b)) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waited %v for %s to match %v; it holds %q (%v)", timeout, args[0], re, b, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cmdGencerts(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: gencerts")
	}
	write := func(name, typ string, der []byte) {
		b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
		ts.Check(os.WriteFile(ts.MkAbs(name), b, 0o600))
	}
	newKey := func() (*ecdsa.PrivateKey, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ts.Check(err)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		ts.Check(err)
		return key, der
	}
	serial := int64(0)
	newCert := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		ts.Check(err)
		c, err := x509.ParseCertificate(der)
		ts.Check(err)
		return c, der
	}
	caTmpl := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	caKey, _ := newKey()
	ca, der := newCert(caTmpl("tnl test CA"), nil, &caKey.PublicKey, caKey)
	write("ca.pem", "CERTIFICATE", der)
	otherKey, _ := newKey()
	_, der = newCert(caTmpl("another CA"), nil, &otherKey.PublicKey, otherKey)
	write("other-ca.pem", "CERTIFICATE", der)
	for _, leaf := range []struct {
		name  string
		usage x509.ExtKeyUsage
	}{{"server", x509.ExtKeyUsageServerAuth}, {"client", x509.ExtKeyUsageClientAuth}} {
		key, keyDER := newKey()
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "tnl test " + leaf.name},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{leaf.usage}}
		if leaf.name == "server" {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		_, der := newCert(tmpl, ca, &key.PublicKey, caKey)
		write(leaf.name+".pem", "CERTIFICATE", der)
		write(leaf.name+".key", "PRIVATE KEY", keyDER)
	}
}

// buildRC builds the "rc" command into dir. It is a program of its own,
// not the test binary run under another name, because a test binary built
// with -race takes a good part of a second to start.
func buildRC(dir string) error {
	src, err := os.MkdirTemp("", "tnl-test-rc")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module rc\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(rcSource), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "rc"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build rc: %v\n%s", err, out)
	}
	return nil
}

// rcSource is the "rc" command: rc [-p PIDFILE] WANT PROG [ARG...].
const rcSource = `// Command rc runs PROG and fails unless it exits with status WANT.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	args := os.Args[1:]
	pidfile := ""
	if len(args) > 2 && args[0] == "-p" {
		pidfile, args = args[1], args[2:]
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rc [-p PIDFILE] WANT PROG [ARG...]")
		os.Exit(2)
	}
	want, prog := args[0], args[1:]
	// Signals meant for PROG's group must not end rc: catch and drop them.
	// (Caught, not ignored: an ignored signal would stay ignored in PROG.)
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for range sigs {
		}
	}()
	cmd := exec.Command(prog[0], prog[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "rc: %v\n", err)
		os.Exit(1)
	}
	if pidfile != "" {
		tmp := pidfile + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err == nil {
			os.Rename(tmp, pidfile)
		}
	}
	cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	got := "?"
	switch {
	case ws.Signaled():
		got = "killed by " + ws.Signal().String()
	case ws.Exited():
		got = strconv.Itoa(ws.ExitStatus())
	}
	if got == want {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "rc: %s: want exit status %s, got %s\n", prog[0], want, got)
	os.Exit(1)
}
`
