package lockd

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// FileLeases is a LeaseStore in a state directory: the file "leases", an
// append-only log of JSON lines, one per grant, renew and end, each written
// and fsynced before the Table answers.
//
//	{"op":"grant","key":"9f86…","name":"deploy","mode":"exclusive","limit":1,"token":7,"since":"2026-12-04T21:00:00.5Z","expires":"2026-12-04T23:00:00.5Z","ttl_ns":7200000000000,"client_id":"ci-1","host":"build3","pid":4242}
//	{"op":"renew","key":"9f86…","expires":"2026-12-04T23:30:00Z"}
//	{"op":"end","key":"9f86…"}
//
// A lease is named by the hex of its key (the sha256 of its id), never by
// the id: whoever reads the state directory cannot renew or release a
// lease. Why a log and not a file rewritten at each change, as the fencing
// state is: a grant then costs one short append and one fsync, whatever
// the number of leases. The log is compacted (rewritten with one grant line
// per live lease: temporary file, fsync, rename, fsync of the directory) at
// open and whenever it grows past twice its live lines plus 64 KiB.
//
// Damage: a last line that is cut short or unreadable is what a crash in
// the middle of an append leaves; it is dropped, and Warning says so. A
// damaged line with lines after it is not: OpenFileLeases refuses it, with
// the file and the line, rather than start without leases some clients
// hold.
type FileLeases struct {
	path string
	// write appends b to f and makes it durable; a seam for tests.
	write func(f *os.File, b []byte) error

	mu      sync.Mutex
	f       *os.File // nil until the first append, when the file did not exist
	size    int64    // of the file, as far as it is known good
	live    map[table.LeaseKey]*fileLease
	liveLen int64 // bytes of the grant lines of live
	broken  bool  // a failed append may have left a partial line: compact first
	warning error
	opened  []LeaseRecord
	closed  bool
}

type fileLease struct {
	r   LeaseRecord
	len int64 // of its grant line
}

// compactSlack is what the log may grow past twice its live lines before
// it is compacted.
const compactSlack = 64 << 10

// leaseLine is one line of the log.
type leaseLine struct {
	Op       string    `json:"op"`
	Key      string    `json:"key"`
	Name     string    `json:"name,omitempty"`
	Mode     string    `json:"mode,omitempty"`
	Limit    int       `json:"limit,omitempty"`
	Token    uint64    `json:"token,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
	TTL      int64     `json:"ttl_ns,omitempty"`
	MaxHold  int64     `json:"max_hold_ns,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
}

// OpenFileLeases opens (or, at the first grant, creates) the lease log in
// dir, reads it, drops the leases expired by the wall clock, and compacts
// it. It refuses a log damaged before its last line, naming the file and
// the line. Open the fencing state (OpenFileTokens) of dir first: on a
// fresh directory it wants no other file. Leases returns what it read, for
// New to re-hold.
func OpenFileLeases(dir string) (*FileLeases, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	l := &FileLeases{path: filepath.Join(dir, "leases"), write: appendSync, live: make(map[table.LeaseKey]*fileLease)}
	b, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lease state: %w", err)
	}
	if err := l.load(b); err != nil {
		return nil, err
	}
	now := time.Now()
	for k, fl := range l.live {
		if !fl.r.Expires.After(now) {
			delete(l.live, k)
		}
	}
	if err := l.compact(); err != nil {
		return nil, fmt.Errorf("lease state: cannot compact %s: %w", l.path, err)
	}
	for _, fl := range l.live {
		l.opened = append(l.opened, fl.r)
	}
	slices.SortFunc(l.opened, func(a, b LeaseRecord) int { return cmp.Compare(a.Token, b.Token) })
	return l, nil
}

// leaseFix is what the operator does about a damaged lease log.
const leaseFix = "restore it, or remove the damaged line (the leases it records are then lost, their holders find them not held)"

// load reads the log into l.live.
func (l *FileLeases) load(b []byte) error {
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, raw := range lines {
		why := l.apply(raw)
		if why == "" {
			continue
		}
		if i == len(lines)-1 {
			l.warning = fmt.Errorf("lease state %s: line %d is damaged (%s), as a crash in the middle of a write leaves it: dropped", l.path, i+1, why)
			break
		}
		return fmt.Errorf("lease state %s: line %d is damaged (%s), and %d lines follow it: not starting, leases that clients hold could be lost; %s",
			l.path, i+1, why, len(lines)-1-i, leaseFix)
	}
	return nil
}

// apply applies one line of the log to l.live, or says what is wrong with
// it.
func (l *FileLeases) apply(raw []byte) string {
	line, ok := bytes.CutSuffix(raw, []byte("\n"))
	if !ok {
		return "no line end"
	}
	var ll leaseLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ll); err != nil {
		return err.Error()
	}
	if dec.More() {
		return "more than one record"
	}
	var key table.LeaseKey
	if k, err := hex.DecodeString(ll.Key); err != nil || len(k) != len(key) {
		return "bad key"
	} else {
		copy(key[:], k)
	}
	switch ll.Op {
	case "grant":
		r := LeaseRecord{Key: key, Name: ll.Name, Limit: max(ll.Limit, 1), Token: ll.Token, Since: ll.Since, Expires: ll.Expires,
			TTL: time.Duration(ll.TTL), MaxHold: time.Duration(ll.MaxHold), Info: table.Info{ClientID: ll.ClientID, Host: ll.Host, PID: ll.PID}}
		switch ll.Mode {
		case "exclusive":
			r.Mode = table.Exclusive
		case "shared":
			r.Mode = table.Shared
		default:
			return "bad mode"
		}
		if r.Name == "" || r.Token == 0 || r.TTL <= 0 || r.Expires.IsZero() || r.Since.IsZero() {
			return "incomplete grant"
		}
		l.forget(key)
		l.live[key] = &fileLease{r: r, len: int64(len(raw))}
		l.liveLen += int64(len(raw))
	case "renew":
		if ll.Expires.IsZero() {
			return "incomplete renew"
		}
		if fl := l.live[key]; fl != nil {
			fl.r.Expires = ll.Expires
		}
	case "end":
		l.forget(key)
	default:
		return "unknown op"
	}
	return ""
}

func (l *FileLeases) forget(key table.LeaseKey) {
	if fl := l.live[key]; fl != nil {
		l.liveLen -= fl.len
		delete(l.live, key)
	}
}

func grantLine(r LeaseRecord) []byte {
	mode := "exclusive"
	if r.Mode == table.Shared {
		mode = "shared"
	}
	return marshalLine(leaseLine{Op: "grant", Key: hex.EncodeToString(r.Key[:]), Name: r.Name, Mode: mode, Limit: r.Limit,
		Token: r.Token, Since: r.Since.UTC(), Expires: r.Expires.UTC(), TTL: int64(r.TTL), MaxHold: int64(r.MaxHold),
		ClientID: r.Info.ClientID, Host: r.Info.Host, PID: r.Info.PID})
}

func marshalLine(ll leaseLine) []byte {
	b, err := json.Marshal(ll)
	if err != nil {
		panic("lockd: a lease line does not marshal: " + err.Error()) // strings, numbers and times only
	}
	return append(b, '\n')
}

// Warning returns what OpenFileLeases dropped (a damaged last line), or
// nil: the caller logs it.
func (l *FileLeases) Warning() error { return l.warning }

// Leases returns the leases read at open, unexpired then, by token.
func (l *FileLeases) Leases() []LeaseRecord { return l.opened }

// Grant appends a grant and returns once it is durable.
func (l *FileLeases) Grant(r LeaseRecord) error {
	line := grantLine(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.append(line); err != nil {
		return err
	}
	l.forget(r.Key)
	l.live[r.Key] = &fileLease{r: r, len: int64(len(line))}
	l.liveLen += int64(len(line))
	return l.maybeCompact()
}

// Renew appends a renew and returns once it is durable.
func (l *FileLeases) Renew(key table.LeaseKey, expires time.Time) error {
	line := marshalLine(leaseLine{Op: "renew", Key: hex.EncodeToString(key[:]), Expires: expires.UTC()})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.append(line); err != nil {
		return err
	}
	if fl := l.live[key]; fl != nil {
		fl.r.Expires = expires
	}
	return l.maybeCompact()
}

// End appends an end and returns once it is durable. The lease is
// forgotten in memory even when the append fails, so that the next
// compaction drops it.
func (l *FileLeases) End(key table.LeaseKey) error {
	line := marshalLine(leaseLine{Op: "end", Key: hex.EncodeToString(key[:])})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live[key] == nil {
		return nil // not in the log, or compacted away: nothing to end
	}
	l.forget(key)
	if err := l.append(line); err != nil {
		return err
	}
	return l.maybeCompact()
}

// append writes line at the end of the log, durably. When the write fails
// the file is cut back to its last good size, so that no partial line is
// left in the middle of the log; when even that fails, the next append
// compacts first.
func (l *FileLeases) append(line []byte) error {
	if l.closed {
		return errors.New("the lease state is closed")
	}
	if l.broken {
		if err := l.compact(); err != nil {
			return err
		}
	}
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		l.f = f
	}
	if err := l.write(l.f, line); err != nil {
		if l.f.Truncate(l.size) != nil {
			l.broken = true
		}
		return err
	}
	l.size += int64(len(line))
	return nil
}

func appendSync(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}

func (l *FileLeases) maybeCompact() error {
	if l.size <= 2*l.liveLen+compactSlack {
		return nil
	}
	// The record is durable already: a failed compaction only leaves a
	// longer log, which the next one shortens.
	_ = l.compact()
	return nil
}

// compact rewrites the log with one grant line per live lease, by token:
// temporary file, fsync, rename, fsync of the directory, so that a crash
// leaves the old log or the new one.
func (l *FileLeases) compact() error {
	recs := make([]LeaseRecord, 0, len(l.live))
	for _, fl := range l.live {
		recs = append(recs, fl.r)
	}
	slices.SortFunc(recs, func(a, b LeaseRecord) int { return cmp.Compare(a.Token, b.Token) })
	var buf bytes.Buffer
	var liveLen int64
	for _, r := range recs {
		line := grantLine(r)
		l.live[r.Key].len = int64(len(line))
		liveLen += int64(len(line))
		buf.Write(line)
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = l.write(f, buf.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	// The old handle is of the old file: appends go to the new one, at
	// its end (O_APPEND, also after a failed write was cut back).
	l.size, l.liveLen, l.broken = int64(buf.Len()), liveLen, false
	if l.f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		l.f, l.broken = nil, true
		return err
	}
	return syncDir(filepath.Dir(l.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close closes the log. Later writes fail.
func (l *FileLeases) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
