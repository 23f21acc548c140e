package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"
)

// This file speaks the tnl wire protocol (lib/protocol/doc.go) directly over
// TCP, without lib/client, so that tnl-server and the null server are driven
// by exactly the same code and the same syscalls: one write per request, one
// buffered read per reply.

// dialTimeout bounds each TCP connect; loopback connects take microseconds,
// so hitting it means the server's accept queue is stuck.
const dialTimeout = 5 * time.Second

// errReply is an answer the benchmark did not expect.
type errReply struct {
	req  string
	got  string
	want string
}

func (e *errReply) Error() string {
	return fmt.Sprintf("unexpected reply to %q: got %q, want %s", e.req, e.got, e.want)
}

// readLine reads one reply line, with its "\n", into a slice valid until the
// next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("reply line longer than %d bytes", br.Size())
		}
		return nil, err
	}
	return line, nil
}

// deadlineOf is ctx's deadline, or a far bound when it has none, so that no
// read in the benchmark can block forever.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(10 * time.Minute)
}

// tnlLegacy is one legacy cycle per lock: connect, "lock,name:N" -> "ok",
// "release" -> "released", close. Every cycle pays the TCP handshake.
type tnlLegacy struct {
	addr   string
	dialer net.Dialer
	c      net.Conn
	br     *bufio.Reader
	name   string
	line   []byte
}

func newTnlLegacy(addr string) *tnlLegacy {
	return &tnlLegacy{addr: addr, dialer: net.Dialer{Timeout: dialTimeout}, br: bufio.NewReaderSize(nil, 512)}
}

var (
	legacyRelease  = []byte("release\n")
	legacyOK       = []byte("ok\n")
	legacyReleased = []byte("released\n")
)

func (t *tnlLegacy) lock(ctx context.Context, name string) (uint64, error) {
	if name != t.name {
		t.name, t.line = name, []byte("lock,name:"+name+"\n")
	}
	c, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return 0, err
	}
	t.c = c
	_ = c.SetDeadline(deadlineOf(ctx))
	t.br.Reset(c)
	if _, err := c.Write(t.line); err != nil {
		t.abort()
		return 0, err
	}
	got, err := readLine(t.br)
	if err != nil {
		t.abort()
		return 0, fmt.Errorf("reading the answer to lock: %w", err)
	}
	if !bytes.Equal(got, legacyOK) {
		t.abort()
		return 0, &errReply{req: string(t.line), got: string(got), want: `"ok"`}
	}
	return 0, nil
}

func (t *tnlLegacy) unlock(context.Context, string) error {
	defer t.abort()
	if _, err := t.c.Write(legacyRelease); err != nil {
		return err
	}
	got, err := readLine(t.br)
	if err != nil {
		return fmt.Errorf("reading the answer to release: %w", err)
	}
	if !bytes.Equal(got, legacyReleased) {
		return &errReply{req: "release\n", got: string(got), want: `"released"`}
	}
	return nil
}

func (t *tnlLegacy) abort() {
	if t.c != nil {
		_ = t.c.Close()
		t.c = nil
	}
}

func (t *tnlLegacy) close() error { t.abort(); return nil }

// tnlSession holds one session connection and locks and releases over it,
// each cycle two round trips and no handshake.
type tnlSession struct {
	c       net.Conn
	br      *bufio.Reader
	timeout time.Duration // the server's dead-peer timeout
	wait    string        // "" or e.g. "inf": ",wait:..." on every lock line

	name               string
	lockLine, relLine  []byte
	okPrefix, released []byte
}

// openSession connects and sends ".session,client-id:bench".
func openSession(ctx context.Context, addr string) (*tnlSession, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(deadlineOf(ctx))
	s := &tnlSession{c: c, br: bufio.NewReaderSize(c, 4096)}
	const req = ".session,client-id:bench\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	got, err := readLine(s.br)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the answer to .session: %w", err)
	}
	v, ok := bytes.CutPrefix(bytes.TrimRight(got, "\n"), []byte("session,dead-peer-timeout:"))
	if !ok {
		c.Close()
		return nil, &errReply{req: req, got: string(got), want: `"session,dead-peer-timeout:SECONDS"`}
	}
	s.timeout, err = parseSeconds(v)
	if err != nil {
		c.Close()
		return nil, &errReply{req: req, got: string(got), want: "a number of seconds"}
	}
	return s, nil
}

func (s *tnlSession) setName(name string) {
	if name == s.name {
		return
	}
	s.name = name
	w := ""
	if s.wait != "" {
		w = ",wait:" + s.wait
	}
	s.lockLine = []byte("lock,name:" + name + w + "\n")
	s.relLine = []byte("release,name:" + name + "\n")
	s.okPrefix = []byte("ok,name:" + name + ",")
	s.released = []byte("released,name:" + name + "\n")
}

func (s *tnlSession) lock(_ context.Context, name string) (uint64, error) {
	s.setName(name)
	if _, err := s.c.Write(s.lockLine); err != nil {
		return 0, err
	}
	got, err := readLine(s.br)
	if err != nil {
		return 0, fmt.Errorf("reading the answer to lock: %w", err)
	}
	tok, ok := parseGrant(got, s.okPrefix)
	if !ok {
		return 0, &errReply{req: string(s.lockLine), got: string(got), want: fmt.Sprintf("%q", string(s.okPrefix)+"token:T")}
	}
	return tok, nil
}

func (s *tnlSession) unlock(_ context.Context, name string) error {
	s.setName(name)
	if _, err := s.c.Write(s.relLine); err != nil {
		return err
	}
	got, err := readLine(s.br)
	if err != nil {
		return fmt.Errorf("reading the answer to release: %w", err)
	}
	if !bytes.Equal(got, s.released) {
		return &errReply{req: string(s.relLine), got: string(got), want: fmt.Sprintf("%q", s.released)}
	}
	return nil
}

// keepalive sends ".keepalive" and reads "alive"; only for a session that
// has nothing else to send for longer than the dead-peer timeout.
func (s *tnlSession) keepalive() error {
	if _, err := s.c.Write([]byte(".keepalive\n")); err != nil {
		return err
	}
	got, err := readLine(s.br)
	if err != nil {
		return err
	}
	if string(got) != "alive\n" {
		return &errReply{req: ".keepalive\n", got: string(got), want: `"alive"`}
	}
	return nil
}

func (s *tnlSession) close() error { return s.c.Close() }

// arm bounds every read and write of the session by d, once, instead of
// setting a deadline per request.
func (s *tnlSession) arm(d time.Time) { _ = s.c.SetDeadline(d) }

// parseGrant checks that line is prefix + "token:T" + optional further keys,
// and returns T.
func parseGrant(line, prefix []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(line, prefix)
	if !ok {
		return 0, false
	}
	// The token may not come first one day: look for the key anywhere.
	i := bytes.Index(rest, []byte("token:"))
	if i < 0 || (i > 0 && rest[i-1] != ',') {
		return 0, false
	}
	var n uint64
	digits := 0
	for _, b := range rest[i+len("token:"):] {
		if b < '0' || b > '9' {
			if b != ',' && b != '\n' {
				return 0, false
			}
			break
		}
		if n > (math.MaxUint64-9)/10 {
			return 0, false // would overflow
		}
		n = n*10 + uint64(b-'0')
		digits++
	}
	if digits == 0 {
		return 0, false
	}
	return n, true
}

// parseSeconds reads the value of dead-peer-timeout: decimal seconds, or a
// Go duration, possibly followed by further keys.
func parseSeconds(v []byte) (time.Duration, error) {
	n, _, _ := bytes.Cut(bytes.TrimRight(v, "\r\n"), []byte(","))
	n = bytes.TrimSpace(n)
	if secs, err := strconv.ParseFloat(string(n), 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(string(n))
	if err == nil && d <= 0 {
		err = fmt.Errorf("not positive: %q", n)
	}
	return d, err
}
