package lockd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// waitIdle waits for f's background write, if one runs, so that a test can
// open the directory again without two writers in it. (A server opens its
// state once; only tests reopen it in the same process.)
func waitIdle(f *FileTokens) {
	for {
		f.mu.Lock()
		writing, done := f.writing, f.done
		f.mu.Unlock()
		if !writing {
			return
		}
		<-done
	}
}

func durable(t *testing.T, dir string) uint64 {
	t.Helper()
	c, err := loadCeiling(filepath.Join(dir, "fence"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func next(t *testing.T, f *FileTokens) uint64 {
	t.Helper()
	v, err := f.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return v
}

func TestFileTokensReopen(t *testing.T) {
	const block = 8
	dir := t.TempDir()
	var last uint64
	for round, draws := range []int{0, 1, 3, 4, 5, 8, 13, 100, 0, 2} {
		f, err := OpenFileTokens(dir, block)
		if err != nil {
			t.Fatal(err)
		}
		for i := range draws {
			v := next(t, f)
			if v <= last {
				t.Fatalf("round %d, draw %d: token %d after %d", round, i, v, last)
			}
			// Restarting skips unused numbers, but not many.
			if i == 0 && v > last+2*block {
				t.Fatalf("round %d: first token %d after %d: skipped more than two blocks", round, v, last)
			}
			if c := durable(t, dir); c < v {
				t.Fatalf("round %d: token %d issued above the stored ceiling %d", round, v, c)
			}
			last = v
		}
		waitIdle(f)
		if err := f.Degraded(); err != nil {
			t.Fatal(err)
		}
		if f.Last() != last && draws > 0 {
			t.Fatalf("Last = %d, want %d", f.Last(), last)
		}
	}
}

// TestFileTokensFormat: the file is "tnl-fence 1 CEILING CRC32C\n"; the old
// format, a bare number, is read and rewritten in the new one at once.
func TestFileTokensFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fence")
	if err := os.WriteFile(path, []byte("12345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFileTokens(dir, 1) // below 2: the default block
	if err != nil {
		t.Fatal(err)
	}
	if v := next(t, f); v != 12346 {
		t.Fatalf("first token %d, want 12346", v)
	}
	// The CRC-32C of "tnl-fence 1 77881", worked out apart from the code.
	if b, _ := os.ReadFile(path); string(b) != "tnl-fence 1 77881 99393ed6\n" {
		t.Fatalf("state file %q, want %q", b, "tnl-fence 1 77881 99393ed6\n")
	}
	if got := formatCeiling(8); got != "tnl-fence 1 8 ed53b051\n" {
		t.Fatalf("formatCeiling(8) = %q", got)
	}

	// A state directory that does not exist yet is made.
	f, err = OpenFileTokens(filepath.Join(dir, "new", "sub"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if v := next(t, f); v != 1 {
		t.Fatalf("first token of a fresh directory: %d, want 1", v)
	}
	if _, err := OpenFileTokens(t.TempDir(), MaxBlock+1); err == nil || err.Error() != "fencing block 4294967297: want at most 4294967296" {
		t.Fatalf("block above MaxBlock: %v", err)
	}
}

// TestFileTokensDamaged: a truncated or corrupt state file, whatever was
// cut or changed, stops the start with one line that names the file and
// the fix; none of them starts at a smaller ceiling.
func TestFileTokensDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fence")
	good := formatCeiling(131072)
	damaged := map[string]string{}
	for i := range len(good) { // every truncation
		damaged[good[:i]] = ""
	}
	for i := range len(good) - 1 { // every byte changed but the newline
		for _, c := range []byte{'0', '7', 'f', ' ', 'x'} {
			if b := []byte(good); b[i] != c {
				b[i] = c
				damaged[string(b)] = ""
			}
		}
	}
	for _, junk := range []string{"12345", "012\n", "-1\n", "12 34\n", "abc\n", "1\n2\n",
		"99999999999999999999999\n", "tnl-fence 2 131072 00000000\n", good + good} {
		damaged[junk] = ""
	}
	for junk := range damaged {
		if err := os.WriteFile(path, []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := OpenFileTokens(dir, 4)
		if err == nil {
			t.Fatalf("state %q: started, first token %d", junk, next(t, f))
		}
		if !strings.HasPrefix(err.Error(), "fencing state "+path+" is truncated or corrupt (") {
			t.Fatalf("state %q: error %q", junk, err)
		}
	}
	if err := os.WriteFile(path, []byte(good[:len(good)-1]), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenFileTokens(dir, 4)
	want := "fencing state " + path + " is truncated or corrupt (no line end): not starting, a token could be handed out twice; " +
		"restore it, or write into it a number above every token ever issued (see Fencing state in tnl-server(1))"
	if err == nil || err.Error() != want {
		t.Fatalf("truncated state: error %v\nwant %s", err, want)
	}
	// The way out the message gives: a bare number above every token.
	if err := os.WriteFile(path, []byte("200000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFileTokens(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	if v := next(t, f); v != 200001 {
		t.Fatalf("first token after the repair: %d, want 200001", v)
	}
}

// TestFileTokensMissing: a directory without the state file starts from
// token 1 only if it holds nothing else (but an empty temporary file, left
// by a first write that failed, or a file system's lost+found).
func TestFileTokensMissing(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"fence.tmp", "lost+found"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := OpenFileTokens(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	if v := next(t, f); v != 1 {
		t.Fatalf("first token %d, want 1", v)
	}
	waitIdle(f)

	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "leases"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenFileTokens(dir, 4)
	want := "fencing state " + dir + "/fence is missing, but " + dir + ` holds "leases": not starting from token 1, which may have been handed out; ` +
		"restore it, or write into it a number above every token ever issued (see Fencing state in tnl-server(1))"
	if err == nil || err.Error() != want {
		t.Fatalf("missing state: error %v\nwant %s", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "fence")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start wrote the state file: %v", err)
	}

	// A temporary file with a ceiling in it: a server wrote there.
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fence.tmp"), []byte(formatCeiling(65536)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = OpenFileTokens(dir, 4); err == nil || !strings.Contains(err.Error(), ` holds "fence.tmp": not starting from token 1`) {
		t.Fatalf("missing state, full temporary file: error %v", err)
	}
}

// TestFileTokensNoWrap: the ceiling stops at MaxToken; the tokens up to it
// are issued, then ErrTokensExhausted, never a wrap to small numbers. A
// stored ceiling with no token left refuses the start.
func TestFileTokensNoWrap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fence")
	for _, c := range []uint64{MaxToken, MaxToken + 1, 1<<64 - 1} {
		if err := os.WriteFile(path, []byte(formatCeiling(c)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenFileTokens(dir, 8)
		want := fmt.Sprintf("fencing state %s: ceiling %d leaves no token below the largest, 9223372036854775807: not starting, tokens never wrap around", path, c)
		if err == nil || err.Error() != want {
			t.Fatalf("ceiling %d: error %v, want %s", c, err, want)
		}
	}
	if err := os.WriteFile(path, []byte(strconv.FormatUint(MaxToken-5, 10)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFileTokens(dir, 8)
	if err != nil {
		t.Fatal(err)
	}
	if c := durable(t, dir); c != MaxToken {
		t.Fatalf("stored ceiling %d, want MaxToken", c)
	}
	for want := uint64(MaxToken - 4); want <= MaxToken; want++ {
		if v := next(t, f); v != want {
			t.Fatalf("token %d, want %d", v, want)
		}
	}
	for range 3 {
		if v, err := f.Next(); !errors.Is(err, ErrTokensExhausted) || v != 0 {
			t.Fatalf("past MaxToken: %d, %v; want ErrTokensExhausted", v, err)
		}
	}
	waitIdle(f)
	if c := durable(t, dir); c != MaxToken {
		t.Fatalf("stored ceiling %d after exhaustion, want MaxToken", c)
	}
}

// TestFileTokensTinyBlock draws tokens much faster than a block of 4 can be
// written, so that Next has to wait for the write; after every Next the
// token must be covered by the stored ceiling.
func TestFileTokensTinyBlock(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenFileTokens(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 2000; i++ {
		v := next(t, f)
		if v != i {
			t.Fatalf("token %d, want %d", v, i)
		}
		if c := f.ceiling.Load(); c < v {
			t.Fatalf("token %d returned before its ceiling was written (ceiling %d)", v, c)
		}
		if i%50 == 0 {
			if c := durable(t, dir); c < v {
				t.Fatalf("token %d issued above the stored ceiling %d", v, c)
			}
		}
	}
	waitIdle(f)
	if err := f.Degraded(); err != nil {
		t.Fatal(err)
	}
}

// fakeDisk stands for the state file: fail makes its writes fail, gate (if
// set) makes each write wait for a word from the test.
type fakeDisk struct {
	t       *testing.T
	mu      sync.Mutex
	ceiling uint64
	fail    error
	writes  int
	gate    chan error // each write receives its result here, when set
}

func (d *fakeDisk) write(_ string, n uint64) error {
	if d.gate != nil {
		if err := <-d.gate; err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	if d.fail != nil {
		return d.fail
	}
	if n <= d.ceiling {
		d.t.Errorf("ceiling written %d after %d: not increasing", n, d.ceiling)
	}
	d.ceiling = n
	return nil
}

func (d *fakeDisk) get() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ceiling
}

func (d *fakeDisk) setFail(err error) {
	d.mu.Lock()
	d.fail = err
	d.mu.Unlock()
}

// openFake opens a FileTokens whose writes after the first go to a fakeDisk.
func openFake(t *testing.T, block uint64) (*FileTokens, *fakeDisk) {
	t.Helper()
	f, err := OpenFileTokens(t.TempDir(), block)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDisk{t: t, ceiling: f.Ceiling()}
	f.write = d.write // before any Next: no writer runs yet
	f.minBackoff, f.maxBackoff = time.Millisecond, 4*time.Millisecond
	t.Cleanup(func() { f.Close() })
	return f, d
}

// watchLog records what Watch reports.
type watchLog struct {
	mu     sync.Mutex
	events []string
	ch     chan string
}

func watch(f *FileTokens) *watchLog {
	w := &watchLog{ch: make(chan string, 100)}
	f.Watch(func(err error) {
		s := "recovered"
		if err != nil {
			s = "degraded: " + err.Error()
		}
		w.mu.Lock()
		w.events = append(w.events, s)
		w.mu.Unlock()
		w.ch <- s
	})
	return w
}

func (w *watchLog) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-w.ch:
		return s
	case <-time.After(10 * time.Second): // a failure detector, not a wait
		t.Fatal("no change reported by Watch within 10s")
		return ""
	}
}

// TestFileTokensFailClosed is issue 9's bug: when the ceiling cannot be
// written, Next issues the tokens up to the durable ceiling and then
// refuses, saying why, instead of issuing from memory what a restart would
// issue again. Watch hears of it once, however many draws are refused;
// the writer retries by itself, and when the disk takes writes again, so
// does Next, above every token before.
func TestFileTokensFailClosed(t *testing.T) {
	f, d := openFake(t, 8) // durable ceiling 8
	w := watch(f)
	full := errors.New("write /state/fence.tmp: no space left on device")
	d.setFail(full)
	var issued []uint64
	for {
		v, err := f.Next()
		if err != nil {
			if !errors.Is(err, ErrNotDurable) || !errors.Is(err, full) {
				t.Fatalf("error %v: not ErrNotDurable with its cause", err)
			}
			if want := "fencing state not durable: write /state/fence.tmp: no space left on device"; err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
			break
		}
		if v > d.get() {
			t.Fatalf("token %d issued above the durable ceiling %d", v, d.get())
		}
		issued = append(issued, v)
	}
	if !slices.Equal(issued, []uint64{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("issued %v, want 1..8: the tokens up to the durable ceiling", issued)
	}
	if got := w.next(t); got != "degraded: "+full.Error() {
		t.Fatalf("Watch: %q", got)
	}
	for range 1000 {
		if _, err := f.Next(); !errors.Is(err, ErrNotDurable) {
			t.Fatalf("while the disk refuses: %v", err)
		}
	}
	if err := f.Degraded(); err != full {
		t.Fatalf("Degraded() = %v, want %v", err, full)
	}
	if f.Last() != 8 {
		t.Fatalf("Last = %d after refusals, want 8: a refused draw uses up no number", f.Last())
	}
	// The writer retries by itself; the disk takes writes again.
	d.setFail(nil)
	if got := w.next(t); got != "recovered" {
		t.Fatalf("Watch: %q, want recovered", got)
	}
	if v := next(t, f); v != 9 || v > d.get() {
		t.Fatalf("after recovery: token %d (durable ceiling %d), want 9", v, d.get())
	}
	if err := f.Degraded(); err != nil {
		t.Fatalf("Degraded() = %v after recovery", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) != 2 {
		t.Fatalf("Watch reported %q, want one degraded and one recovered", w.events)
	}
}

// TestFileTokensWaitsForWrite: a draw above the durable ceiling waits for
// the write that runs; it gets no token if that write fails.
func TestFileTokensWaitsForWrite(t *testing.T) {
	f, d := openFake(t, 4) // durable ceiling 4
	d.gate = make(chan error)
	for i := uint64(1); i <= 4; i++ { // 3 starts the write, which waits at the gate
		if v := next(t, f); v != i {
			t.Fatalf("token %d, want %d", v, i)
		}
	}
	type res struct {
		v   uint64
		err error
	}
	got := make(chan res, 1)
	go func() { v, err := f.Next(); got <- res{v, err} }()
	// The write has not ended: token 5 cannot have been issued.
	select {
	case r := <-got:
		t.Fatalf("Next returned %d, %v before the ceiling was written", r.v, r.err)
	default:
	}
	w := watch(f)
	d.gate <- errors.New("EIO")
	r := <-got
	if r.v != 0 || !errors.Is(r.err, ErrNotDurable) || r.err.Error() != "fencing state not durable: EIO" {
		t.Fatalf("after the failed write: %d, %v; want ErrNotDurable", r.v, r.err)
	}
	if s := w.next(t); s != "degraded: EIO" {
		t.Fatalf("Watch: %q", s)
	}
	close(d.gate) // from now on every write succeeds at once
	if s := w.next(t); s != "recovered" {
		t.Fatalf("Watch: %q", s)
	}
	if v := next(t, f); v != 5 {
		t.Fatalf("token %d after recovery, want 5", v)
	}
}

// TestFileTokensRace: many goroutines draw while the disk fails and
// recovers at random. Every token is handed out once, each is at or below
// the durable ceiling when its Next returns, and a restart on what the disk
// holds starts above all of them.
func TestFileTokensRace(t *testing.T) {
	const goroutines, draws = 16, 3000
	f, d := openFake(t, 16)
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		rnd := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				d.setFail(nil)
				return
			default:
			}
			if rnd.IntN(2) == 0 {
				d.setFail(errors.New("no space left on device"))
			} else {
				d.setFail(nil)
			}
			time.Sleep(time.Duration(rnd.IntN(500)) * time.Microsecond) // the disk's whims, not synchronisation
		}
	}()
	got := make([][]uint64, goroutines)
	refused := make([]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for len(got[g]) < draws {
				v, err := f.Next()
				if err != nil {
					if !errors.Is(err, ErrNotDurable) {
						t.Errorf("Next: %v", err)
						return
					}
					refused[g]++
					continue
				}
				if c := d.get(); v > c {
					t.Errorf("token %d issued above the durable ceiling %d", v, c)
					return
				}
				got[g] = append(got[g], v)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-flipped
	var all []uint64
	nrefused := 0
	for g, s := range got {
		for i := 1; i < len(s); i++ {
			if s[i] <= s[i-1] {
				t.Fatalf("goroutine %d: token %d after %d", g, s[i], s[i-1])
			}
		}
		all = append(all, s...)
		nrefused += refused[g]
	}
	slices.Sort(all)
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("token %d handed out twice", all[i])
		}
	}
	if restart := d.get(); restart < all[len(all)-1] {
		t.Fatalf("a restart would start at %d, below token %d", restart, all[len(all)-1])
	}
	d.mu.Lock()
	writes := d.writes
	d.mu.Unlock()
	t.Logf("%d tokens, %d refused draws, %d writes, last token %d, durable ceiling %d",
		len(all), nrefused, writes, all[len(all)-1], d.get())
}

// TestFileTokensConcurrent: many goroutines draw at once; every token is
// handed out once, each goroutine sees its tokens increase, none is lost.
func TestFileTokensConcurrent(t *testing.T) {
	const goroutines, draws = 16, 2000
	dir := t.TempDir()
	f, err := OpenFileTokens(dir, 64)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range draws {
				v, err := f.Next()
				if err != nil {
					t.Error(err)
					return
				}
				got[g] = append(got[g], v)
			}
		})
	}
	wg.Wait()
	var all []uint64
	for g, s := range got {
		for i := 1; i < len(s); i++ {
			if s[i] <= s[i-1] {
				t.Fatalf("goroutine %d: token %d after %d", g, s[i], s[i-1])
			}
		}
		all = append(all, s...)
	}
	slices.Sort(all)
	for i, v := range all {
		if v != uint64(i+1) {
			t.Fatalf("tokens are not 1..%d: %d at %d (repeated or skipped)", len(all), v, i)
		}
	}
	if f.Last() != uint64(len(all)) {
		t.Fatalf("Last = %d, want %d", f.Last(), len(all))
	}
	waitIdle(f)
	if c := durable(t, dir); c < f.Last() {
		t.Fatalf("token %d issued above the stored ceiling %d", f.Last(), c)
	}
}

// TestErrorsUnavailable: the token source's refusals are table.ErrUnavailable,
// also wrapped with their cause, and keep their words, which the server
// answers on the wire.
func TestErrorsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ErrNotDurable, "fencing state not durable"},
		{ErrTokensExhausted, "fencing tokens exhausted"},
		{fmt.Errorf("%w: %w", ErrNotDurable, errors.New("EIO")), "fencing state not durable: EIO"},
	} {
		if !errors.Is(tc.err, table.ErrUnavailable) || errors.Is(tc.err, table.ErrQueueFull) {
			t.Errorf("%v: errors.Is ErrUnavailable %v, ErrQueueFull %v; want true, false",
				tc.err, errors.Is(tc.err, table.ErrUnavailable), errors.Is(tc.err, table.ErrQueueFull))
		}
		if tc.err.Error() != tc.want {
			t.Errorf("text %q, want %q", tc.err.Error(), tc.want)
		}
	}
	if errors.Is(ErrNotDurable, ErrTokensExhausted) {
		t.Error("ErrNotDurable is ErrTokensExhausted")
	}
}
