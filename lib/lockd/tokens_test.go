package lockd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
	c, err := readCeiling(filepath.Join(dir, "fence"))
	if err != nil {
		t.Fatal(err)
	}
	return c
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
			v := f.Next()
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
		if err := f.Err(); err != nil {
			t.Fatal(err)
		}
		if f.Last() != last && draws > 0 {
			t.Fatalf("Last = %d, want %d", f.Last(), last)
		}
	}
}

func TestFileTokensState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fence")
	if err := os.WriteFile(path, []byte("12345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFileTokens(dir, 1) // below 2: the default block
	if err != nil {
		t.Fatal(err)
	}
	if v := f.Next(); v != 12346 {
		t.Fatalf("first token %d, want 12346", v)
	}
	if c := durable(t, dir); c != 12345+DefaultBlock {
		t.Fatalf("stored ceiling %d, want %d", c, 12345+DefaultBlock)
	}

	// A state directory that does not exist yet is made.
	f, err = OpenFileTokens(filepath.Join(dir, "new", "sub"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.Next(); v != 1 {
		t.Fatalf("first token of a fresh directory: %d, want 1", v)
	}

	for _, junk := range []string{"", "abc\n", "-1\n", "12 34\n", "99999999999999999999999\n"} {
		if err := os.WriteFile(path, []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenFileTokens(dir, 4); err == nil || !strings.Contains(err.Error(), "not a number") {
			t.Errorf("state %q: error %v, want \"not a number\"", junk, err)
		}
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
		v := f.Next()
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
	if err := f.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestFileTokensDiskRefuses: when the ceiling cannot be written, Next keeps
// issuing increasing tokens (locks keep being granted) and Err says why;
// when the disk is back, so is durability.
func TestFileTokensDiskRefuses(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenFileTokens(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	good := f.path
	f.path = filepath.Join(dir, "missing", "fence") // no write runs now
	var last uint64
	drawn := make(chan struct{})
	go func() {
		defer close(drawn)
		for range 20 {
			v := f.Next()
			if v <= last {
				t.Errorf("token %d after %d", v, last)
				return
			}
			last = v
		}
	}()
	select {
	case <-drawn:
	case <-time.After(30 * time.Second): // a failure detector, not a wait
		t.Fatal("Next does not return while the ceiling cannot be written")
	}
	waitIdle(f)
	if f.Err() == nil {
		t.Fatal("Err is nil after failed writes")
	}
	f.path = good
	for range 20 {
		last = f.Next()
	}
	waitIdle(f)
	if err := f.Err(); err != nil {
		t.Fatalf("Err after the disk is back: %v", err)
	}
	if c := durable(t, dir); c < last {
		t.Fatalf("token %d issued above the stored ceiling %d", last, c)
	}
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
				got[g] = append(got[g], f.Next())
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
