package protocol

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// durationCases: what ParseDuration makes of each spelling; err is its
// error, or nil. (test/drift_test.go holds shell/tnl.sh's copy of the rule
// to ParseDuration itself.)
var durationCases = []struct {
	in   string
	want time.Duration
	err  error
}{
	{"0", 0, nil},
	{"0.0", 0, nil},
	{"00", 0, nil},
	{"5", 5 * time.Second, nil},
	{"5.", 5 * time.Second, nil},
	{".5", 500 * time.Millisecond, nil},
	{"2.5", 2500 * time.Millisecond, nil},
	{"0.3", 300 * time.Millisecond, nil}, // 0.3*1e9 in float64 truncates to 299999999
	{"0.000000001", 1, nil},
	{"0.0000000004", 0, nil},              // rounded down
	{"0.0000000005", 1, nil},              // halves up
	{"0.0000000014999", 1, nil},           // only the first digit below a nanosecond decides, here
	{"1.000000007", time.Second + 7, nil}, // what FormatWait writes
	{"123.456789012", 123456789012, nil},
	{"0s", 0, nil},
	{"1ns", 1, nil},
	{"1.4ns", 1, nil},
	{"1.5ns", 2, nil}, // time.ParseDuration truncates: 1ns
	{"1us", time.Microsecond, nil},
	{"1µs", time.Microsecond, nil},
	{"1μs", time.Microsecond, nil},
	{"250ms", 250 * time.Millisecond, nil},
	{"1.5s", 1500 * time.Millisecond, nil},
	{".5s", 500 * time.Millisecond, nil},
	{"5.s", 5 * time.Second, nil},
	{"5m", 5 * time.Minute, nil},
	{"1.5m", 90 * time.Second, nil},
	{"0.0000000000083m", 0, nil},  // 0.498ns: down
	{"0.0000000000084m", 1, nil},  // 0.504ns: up
	{"0.00000000000833m", 0, nil}, // 0.4998ns
	{"0.00000000000834m", 1, nil}, // 0.5004ns
	{"1h30m", 90 * time.Minute, nil},
	{"1.5h", 90 * time.Minute, nil},
	{"1h2m3s4ms5us6ns", time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond + 5*time.Microsecond + 6, nil},
	{"10s10s", 20 * time.Second, nil},
	{"2562047h47m16.854775807s", math.MaxInt64, nil},
	{"9223372036.854775807", math.MaxInt64, nil},

	{"", 0, ErrDurationSyntax},
	{".", 0, ErrDurationSyntax},
	{"s", 0, ErrDurationSyntax},
	{"5x", 0, ErrDurationSyntax},
	{"5S", 0, ErrDurationSyntax},
	{"5M", 0, ErrDurationSyntax},
	{"5 s", 0, ErrDurationSyntax},
	{" 5", 0, ErrDurationSyntax},
	{"5 ", 0, ErrDurationSyntax},
	{"+5", 0, ErrDurationSyntax},
	{"1e3", 0, ErrDurationSyntax},
	{"0x10", 0, ErrDurationSyntax},
	{"1_000", 0, ErrDurationSyntax},
	{"1,5", 0, ErrDurationSyntax},
	{"1..5", 0, ErrDurationSyntax},
	{"1.5.5", 0, ErrDurationSyntax},
	{"5s5", 0, ErrDurationSyntax}, // a bare number only on its own
	{"1hm", 0, ErrDurationSyntax},
	{"inf", 0, ErrDurationSyntax}, // ParseWait's, not a duration
	{"NaN", 0, ErrDurationSyntax},
	{"Inf", 0, ErrDurationSyntax},
	{"5sec", 0, ErrDurationSyntax},
	{"5d", 0, ErrDurationSyntax},
	{"-1", 0, ErrDurationNegative},
	{"-0", 0, ErrDurationNegative},
	{"-1s", 0, ErrDurationNegative},
	{"9223372036.854775808", 0, ErrDurationRange},
	{"2562047h47m16.854775808s", 0, ErrDurationRange},
	{"2562048h", 0, ErrDurationRange},
	{"99999999999999999999", 0, ErrDurationRange},
	{"99999999999999999999ns", 0, ErrDurationRange},
}

func TestParseDuration(t *testing.T) {
	for _, tc := range durationCases {
		got, err := ParseDuration(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error %v", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %d, %v; want %d", tc.in, int64(got), err, int64(tc.want))
		}
	}
}

func TestParseDurationAllocs(t *testing.T) {
	for _, s := range []string{"2.5", "1h30m", "0.000000001", "250ms"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseDuration(s) }); n != 0 {
			t.Errorf("ParseDuration(%q): %v allocations; want 0", s, n)
		}
	}
}

// FuzzParseDuration: whatever ParseDuration accepts, time.ParseDuration
// reads within a nanosecond per number (it truncates where we round; a bare
// number is seconds here; len(s) bounds the count of numbers), and FormatWait writes back to the same value.
func FuzzParseDuration(f *testing.F) {
	for _, tc := range durationCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
		gs := s
		if !strings.ContainsAny(s, "nsumh\u00b5\u03bc") {
			gs += "s"
		}
		g, err := time.ParseDuration(gs)
		if err != nil {
			t.Fatalf("ParseDuration(%q) = %v, but time.ParseDuration(%q): %v", s, d, gs, err)
		}
		if diff := d - g; diff < 0 || diff > time.Duration(len(s)) {
			t.Fatalf("ParseDuration(%q) = %d, time.ParseDuration(%q) = %d", s, d, gs, g)
		}
		if d <= MaxWait {
			if back, err := ParseWait(FormatWait(d)); err != nil || (d <= exactWaitBound && back != d) {
				t.Fatalf("ParseWait(FormatWait(%d) = %q) = %d, %v", d, FormatWait(d), back, err)
			}
		}
	})
}
