package lockd

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// DefaultBlock is how many tokens FileTokens reserves with one write.
const DefaultBlock = 1 << 16

// MaxBlock is the largest block OpenFileTokens accepts.
const MaxBlock = 1 << 32

// MaxToken is the largest fencing token ever issued. Why 2^63-1 and not
// 2^64-1: a token is compared in bash arithmetic, test -gt, SQL BIGINT
// columns and every other signed 64-bit integer; above 2^63-1 it would
// compare as negative, below every earlier token. No server comes near it
// (a million grants a second for 290000 years), but a ceiling written by hand
// might: it is refused, never wrapped.
const MaxToken = math.MaxInt64

// Errors of Next. Both are table.ErrUnavailable (errors.Is), with words of
// their own: the server answers a refusal's err.Error() on the wire.
var (
	// ErrNotDurable: the next token is above the durable ceiling and the
	// ceiling cannot be moved (the state directory refuses writes). The
	// error returned wraps it and the cause.
	ErrNotDurable error = &unavailable{"fencing state not durable"}
	// ErrTokensExhausted: every token up to MaxToken has been handed out.
	ErrTokensExhausted error = &unavailable{"fencing tokens exhausted"}
)

// unavailable is an error that is table.ErrUnavailable in its own words.
type unavailable struct{ msg string }

func (e *unavailable) Error() string { return e.msg }

// Is makes errors.Is(err, table.ErrUnavailable) hold.
func (e *unavailable) Is(target error) bool { return target == table.ErrUnavailable }

// errClosed is the cause of ErrNotDurable after Close.
var errClosed = errors.New("the fencing state is closed")

// FileTokens is a TokenSource that survives restarts, kill -9 included.
//
// Why blocks: a grant must not wait for an fsync, yet a token handed out
// must never be handed out again after a crash. So the file holds a ceiling,
// a number at least as large as every token issued so far; tokens are issued
// from memory up to it, and when half the reserved block is used a
// background write moves the ceiling one block further. After a crash the
// server starts at the stored ceiling, skipping at most one block of unused
// numbers. Only if tokens are drawn faster than half a block per fsync does
// Next wait for the write.
//
// Why it fails closed: when the write fails (a full or read-only file system)
// the ceiling in memory stays where the file has it, tokens up to it are
// still issued, and the next one is refused with ErrNotDurable instead of
// being issued from memory, where a restart would issue it again. The
// write is retried in the background, 100ms apart at first and then up to
// 5s apart, until it succeeds; Watch tells who wants to know (the Table
// serves the waiters left queued, the server logs it).
type FileTokens struct {
	path  string
	block uint64
	// write stores a ceiling durably; a seam for tests.
	write                  func(path string, ceiling uint64) error
	minBackoff, maxBackoff time.Duration

	last    atomic.Uint64 // last token issued
	ceiling atomic.Uint64 // durable: every token issued is <= ceiling

	mu       sync.Mutex
	writing  bool          // the writer goroutine runs
	done     chan struct{} // while writing: closed when the current attempt ends
	err      error         // the last attempt failed (degraded); nil after a success
	closed   bool
	stop     chan struct{} // closed by Close: the writer stops retrying
	wg       sync.WaitGroup
	watchers []func(error)
}

// OpenFileTokens opens (or creates) the token state in dir. It writes a new
// ceiling before returning, so a token is never issued from a number that is
// not yet durable. A block below 2 means DefaultBlock.
//
// It refuses to start, rather than risk a token twice, when the state file
// is truncated or corrupt, when it is missing from a directory that holds
// anything else (the state was lost, not never made), and when its ceiling
// leaves no token below MaxToken.
func OpenFileTokens(dir string, block uint64) (*FileTokens, error) {
	if block < 2 {
		block = DefaultBlock
	}
	if block > MaxBlock {
		return nil, fmt.Errorf("fencing block %d: want at most %d", block, uint64(MaxBlock))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	t := newFileTokens(filepath.Join(dir, "fence"), block)
	start, err := loadCeiling(t.path)
	if err != nil {
		return nil, err
	}
	if start >= MaxToken {
		return nil, fmt.Errorf("fencing state %s: ceiling %d leaves no token below the largest, %d: not starting, tokens never wrap around",
			t.path, start, uint64(MaxToken))
	}
	t.last.Store(start)
	next := t.nextCeiling(start)
	if err := t.write(t.path, next); err != nil {
		return nil, fmt.Errorf("fencing state: cannot write %s: %w", t.path, err)
	}
	t.ceiling.Store(next)
	return t, nil
}

func newFileTokens(path string, block uint64) *FileTokens {
	return &FileTokens{path: path, block: block, write: writeCeiling,
		minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second, stop: make(chan struct{})}
}

// nextCeiling is one block above c, without passing MaxToken. (c <= MaxToken
// and block <= MaxBlock: the sum cannot wrap.)
func (t *FileTokens) nextCeiling(c uint64) uint64 { return min(c+t.block, MaxToken) }

// Next returns a token larger than any returned before, by this process or
// an earlier one using the same directory, or an error: ErrNotDurable
// (wrapped, with the cause) when the token would be above the durable
// ceiling and the ceiling cannot be written, ErrTokensExhausted past
// MaxToken. A failed Next uses up no number.
func (t *FileTokens) Next() (uint64, error) {
	for {
		l := t.last.Load()
		c := t.ceiling.Load() // after l: the ceiling only grows
		if l >= c {
			if err := t.await(l + 1); err != nil {
				return 0, err
			}
			continue
		}
		if !t.last.CompareAndSwap(l, l+1) {
			continue
		}
		v := l + 1
		if v+t.block/2 > c {
			t.extend()
		}
		return v, nil
	}
}

// extend starts the writer, unless it runs already.
func (t *FileTokens) extend() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startLocked()
}

func (t *FileTokens) startLocked() {
	if t.writing || t.closed || t.ceiling.Load() >= MaxToken {
		return
	}
	t.writing = true
	t.done = make(chan struct{})
	t.wg.Add(1)
	go t.run()
}

// await returns once v is at or below the durable ceiling, or why it cannot
// be: it waits for a write that runs, but not while degraded (the retries are
// seconds apart, and the caller holds a shard mutex).
func (t *FileTokens) await(v uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		switch c := t.ceiling.Load(); {
		case v <= c:
			return nil
		case c >= MaxToken:
			return ErrTokensExhausted
		case t.err != nil:
			return fmt.Errorf("%w: %w", ErrNotDurable, t.err)
		case t.closed:
			return fmt.Errorf("%w: %w", ErrNotDurable, errClosed)
		}
		t.startLocked()
		done := t.done
		t.mu.Unlock()
		<-done
		t.mu.Lock()
	}
}

// run is the writer: it moves the durable ceiling a block up, retrying with
// a backoff while the write fails, and goes on while the tokens issued
// meanwhile want another block.
func (t *FileTokens) run() {
	defer t.wg.Done()
	backoff := t.minBackoff
	for {
		// Only the writer moves the ceiling: reading it unlocked is safe.
		next := t.nextCeiling(t.ceiling.Load())
		err := t.write(t.path, next)
		t.mu.Lock()
		changed := (err != nil) != (t.err != nil)
		if err == nil {
			t.ceiling.Store(next)
		}
		t.err = err
		// Wake the waiters of this attempt; a fresh channel for the next.
		close(t.done)
		t.done = make(chan struct{})
		watchers := slices.Clone(t.watchers)
		t.mu.Unlock()
		// Still writing, so no other writer can start and tell the watchers
		// about a later change before this one.
		if changed {
			for _, f := range watchers {
				f(err)
			}
		}
		if err != nil {
			timer := time.NewTimer(backoff)
			select {
			case <-timer.C:
			case <-t.stop:
				timer.Stop()
				t.finish()
				return
			}
			backoff = min(2*backoff, t.maxBackoff)
			continue
		}
		backoff = t.minBackoff
		t.mu.Lock()
		c := t.ceiling.Load()
		if t.closed || c >= MaxToken || t.last.Load()+t.block/2 <= c {
			t.writing = false
			close(t.done)
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

func (t *FileTokens) finish() {
	t.mu.Lock()
	t.writing = false
	close(t.done)
	t.mu.Unlock()
}

// Degraded returns why tokens above the durable ceiling cannot be issued
// now (the last write of the ceiling failed and none succeeded since), or
// nil. Tokens up to the ceiling are still issued while degraded.
func (t *FileTokens) Degraded() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Watch registers f, called whenever Degraded changes: with the write error
// when the ceiling cannot be written, with nil when a write succeeds again.
// f runs on FileTokens' writer goroutine, one call at a time, in order, and
// must return soon without calling Next: the writer waits for it, and so
// would Next. A Table made with t watches it by itself.
func (t *FileTokens) Watch(f func(err error)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.watchers = append(t.watchers, f)
}

// Close stops the retries and waits for a write in progress. Tokens up to
// the durable ceiling are still issued after it, no later ones.
func (t *FileTokens) Close() error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.stop)
	}
	t.mu.Unlock()
	t.wg.Wait()
	return nil
}

// Last returns the last token issued.
func (t *FileTokens) Last() uint64 { return t.last.Load() }

// Ceiling returns the durable ceiling: no token above it has been issued.
func (t *FileTokens) Ceiling() uint64 { return t.ceiling.Load() }

// The state file is one line:
//
//	tnl-fence 1 CEILING CRC\n
//
// CEILING in decimal, CRC the CRC-32C (Castagnoli) of "tnl-fence 1 CEILING"
// in 8 lowercase hex digits. The magic, the version and the check let a
// truncated or damaged file be told from a good one. Before this format the
// file was the bare number and a newline; that is still read, so an upgrade
// keeps its tokens, and rewritten in the new format at once.
const fenceMagic = "tnl-fence 1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func formatCeiling(n uint64) string {
	body := fenceMagic + " " + strconv.FormatUint(n, 10)
	return fmt.Sprintf("%s %08x\n", body, crc32.Checksum([]byte(body), castagnoli))
}

// parseCeiling reads the contents of a state file, or says what is wrong
// with them.
func parseCeiling(b []byte) (uint64, string) {
	s := string(b)
	if s == "" {
		return 0, "empty"
	}
	line, ok := strings.CutSuffix(s, "\n")
	if !ok {
		return 0, "no line end"
	}
	if strings.Contains(line, "\n") {
		return 0, "more than one line"
	}
	if n, err := strconv.ParseUint(line, 10, 64); err == nil {
		// The old format, as the old server wrote it: canonical digits.
		if strconv.FormatUint(n, 10) != line {
			return 0, "not a number as tnl writes it"
		}
		return n, ""
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "tnl-fence" {
		return 0, "not a tnl fencing state"
	}
	if len(f) != 4 || f[1] != "1" {
		return 0, "unknown format"
	}
	n, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return 0, "bad ceiling"
	}
	if formatCeiling(n) != s {
		return 0, "bad checksum"
	}
	return n, ""
}

// loadCeiling reads the stored ceiling: 0 for a fresh state directory.
func loadCeiling(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if other := otherState(filepath.Dir(path)); other != "" {
			return 0, fmt.Errorf("fencing state %s is missing, but %s holds %s: not starting from token 1, which may have been handed out; %s",
				path, filepath.Dir(path), other, fenceFix)
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read fencing state: %w", err)
	}
	n, bad := parseCeiling(b)
	if bad != "" {
		return 0, fmt.Errorf("fencing state %s is truncated or corrupt (%s): not starting, a token could be handed out twice; %s", path, bad, fenceFix)
	}
	return n, nil
}

// fenceFix is what the operator does about a lost or damaged state file.
const fenceFix = "restore it, or write into it a number above every token ever issued (see Fencing state in tnl-server(1))"

// otherState names an entry of dir that shows it held state before: any
// entry but a file system's lost+found and an empty temporary file (left by
// a first write that failed at once, on a full disk say). A temporary file
// with something in it was written by a server that may have issued tokens.
func otherState(dir string) string {
	d, err := os.Open(dir)
	if err != nil {
		return ""
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(16)
		for _, n := range names {
			if n == "lost+found" {
				continue
			}
			if fi, err := os.Lstat(filepath.Join(dir, n)); n == "fence.tmp" && err == nil && fi.Size() == 0 {
				continue
			}
			return strconv.Quote(n)
		}
		if err != nil {
			return ""
		}
	}
}

// writeCeiling replaces the file atomically and durably: temp file, fsync,
// rename, fsync of the directory. Its errors are the os errors, which name
// the file and the operation.
func writeCeiling(path string, n uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(formatCeiling(n))
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
	return err
}
