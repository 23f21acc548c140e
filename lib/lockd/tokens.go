package lockd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultBlock is how many tokens FileTokens reserves with one write.
const DefaultBlock = 1 << 16

// FileTokens is a TokenSource that survives restarts, kill -9 included.
//
// Why blocks: a grant must never wait for an fsync, yet a token handed out
// must never be handed out again after a crash. So the file holds a ceiling,
// a number larger than every token issued so far; tokens are issued from
// memory below it, and when half the reserved block is used a background
// write moves the ceiling one block further. After a crash the server starts
// at the stored ceiling, skipping at most one block of unused numbers. Only
// if tokens are drawn faster than a block per fsync does Next wait.
type FileTokens struct {
	path  string
	block uint64

	last    atomic.Uint64 // last token issued
	ceiling atomic.Uint64 // durable: every token issued is <= ceiling

	mu      sync.Mutex
	writing bool
	done    chan struct{} // closed when the running write ends
	err     error         // last write error, reported by Err
}

// OpenFileTokens opens (or creates) the token state in dir. It writes a new
// ceiling before returning, so a token is never issued from a number that is
// not yet durable.
func OpenFileTokens(dir string, block uint64) (*FileTokens, error) {
	if block < 2 {
		block = DefaultBlock
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	t := &FileTokens{path: filepath.Join(dir, "fence"), block: block}
	start, err := readCeiling(t.path)
	if err != nil {
		return nil, err
	}
	t.last.Store(start)
	if err := writeCeiling(t.path, start+block); err != nil {
		return nil, err
	}
	t.ceiling.Store(start + block)
	return t, nil
}

// Next returns a token larger than any returned before, by this process or
// an earlier one using the same directory.
func (t *FileTokens) Next() uint64 {
	v := t.last.Add(1)
	c := t.ceiling.Load()
	if v+t.block/2 > c {
		t.extend(v)
	}
	return v
}

// extend starts a write of the next ceiling and, if v is not yet below a
// durable ceiling, waits for it.
func (t *FileTokens) extend(v uint64) {
	for {
		t.mu.Lock()
		c := t.ceiling.Load()
		if v+t.block/2 <= c {
			t.mu.Unlock()
			return
		}
		if !t.writing {
			t.writing = true
			t.done = make(chan struct{})
			next := max(c, v) + t.block
			go t.write(next, t.done)
		}
		done := t.done
		t.mu.Unlock()
		if v <= c {
			return // already durable; the write runs ahead in the background
		}
		<-done
		if t.ceiling.Load() < v && t.Err() != nil {
			// The disk refuses: keep issuing from memory rather than stop
			// granting locks; Err reports it and the server logs it.
			return
		}
	}
}

func (t *FileTokens) write(next uint64, done chan struct{}) {
	err := writeCeiling(t.path, next)
	t.mu.Lock()
	if err == nil {
		t.ceiling.Store(next)
	}
	t.err = err
	t.writing = false
	t.mu.Unlock()
	close(done)
}

// Err is the last error writing the state file, or nil.
func (t *FileTokens) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Last returns the last token issued.
func (t *FileTokens) Last() uint64 { return t.last.Load() }

func readCeiling(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read fencing state: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read fencing state %s: not a number", path)
	}
	return n, nil
}

// writeCeiling replaces the file atomically and durably: temp file, fsync,
// rename, fsync of the directory.
func writeCeiling(path string, n uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write fencing state: %w", err)
	}
	_, err = f.WriteString(strconv.FormatUint(n, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(path)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("write fencing state: %w", err)
	}
	return nil
}
