package protocol

import (
	"errors"
	"math"
	"time"
)

// Errors of ParseDuration. Callers put them in their own words (a flag's
// name, the wire's "invalid wait: ..."); test with errors.Is.
var (
	// ErrDurationSyntax: not a number of seconds nor a duration like 5m.
	ErrDurationSyntax = errors.New("want seconds or a duration like 5m")
	// ErrDurationNegative: the span starts with '-'.
	ErrDurationNegative = errors.New("must not be negative")
	// ErrDurationRange: more nanoseconds than a time.Duration holds.
	ErrDurationRange = errors.New("too large")
)

// ParseDuration parses a span of time as every part of tnl takes one: the
// wire's wait key, the commands' DURATION flags and shell/tnl.sh (which
// keeps a copy of this rule, checked against it by a test). The spellings:
//
//	SECONDS   digits, with a decimal point and fraction if wanted: 2, 0.25, .5, 5.
//	UNITS     one or more NUMBER UNIT, NUMBER as SECONDS, UNIT one of
//	          ns, us (µs), ms, s, m, h: 250ms, 1h30m, 1.5s
//
// Nothing else: no sign, no exponent, no white space, no "inf" (ParseWait
// adds that). A plain number is seconds, as flock(1) and tcpnetlock take it.
//
// Rounding: each NUMBER is taken exactly, in decimal, and rounded to the
// nearest nanosecond, halves up ("0.0000000015" is 2ns, "1.4ns" 1ns), so
// that the seconds the client writes (FormatWait) read back to the same
// nanosecond. Only the first 15 digits past the nanoseconds' count.
//
// It does not allocate.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, ErrDurationSyntax
	}
	if s[0] == '-' {
		return 0, ErrDurationNegative
	}
	var total uint64
	rest := s
	for rest != "" {
		intPart, frac, after, ok := scanNumber(rest)
		if !ok {
			return 0, ErrDurationSyntax
		}
		unit, after, ok := scanUnit(after)
		switch {
		case !ok && after == "" && rest == s:
			unit = uint64(time.Second) // a plain number: seconds
		case !ok:
			return 0, ErrDurationSyntax
		}
		ns, ok := numberNanos(intPart, frac, unit)
		if !ok || ns > math.MaxInt64-total {
			return 0, ErrDurationRange
		}
		total += ns
		rest = after
	}
	return time.Duration(total), nil
}

// scanNumber takes digits [ "." digits ] off the front of s, with at least
// one digit in all.
func scanNumber(s string) (intPart, frac, rest string, ok bool) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart = s[:i]
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		frac = s[i+1 : j]
		i = j
	}
	return intPart, frac, s[i:], intPart != "" || frac != ""
}

// scanUnit takes a unit off the front of s and returns its length in
// nanoseconds. ok is false when s does not start with one; rest is then s.
func scanUnit(s string) (ns uint64, rest string, ok bool) {
	i := 0
	for i < len(s) && !isDigit(s[i]) && s[i] != '.' {
		i++
	}
	switch s[:i] {
	case "ns":
		ns = 1
	case "us", "µs", "μs": // U+00B5 and U+03BC, as time.ParseDuration
		ns = uint64(time.Microsecond)
	case "ms":
		ns = uint64(time.Millisecond)
	case "s":
		ns = uint64(time.Second)
	case "m":
		ns = uint64(time.Minute)
	case "h":
		ns = uint64(time.Hour)
	default:
		return 0, s, false
	}
	return ns, s[i:], true
}

// numberNanos is intPart.frac units in nanoseconds, rounded to the nearest,
// halves up; ok is false past math.MaxInt64. A unit is c·10^a ns (c is 1,
// 6 or 36): the fraction's first a digits, times c, are whole nanoseconds;
// the rest, times c, gives a few more and the rounding. Integers only: a
// float64 would be off by one in the last place for some spellings.
func numberNanos(intPart, frac string, unit uint64) (uint64, bool) {
	c, a := unit, 0
	for c%10 == 0 {
		c /= 10
		a++
	}
	var n uint64
	for i := 0; i < len(intPart); i++ {
		d := uint64(intPart[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if n > math.MaxInt64/unit {
		return 0, false
	}
	n *= unit
	var head uint64
	for i := 0; i < a; i++ {
		head *= 10
		if i < len(frac) {
			head += uint64(frac[i] - '0')
		}
	}
	tail := ""
	if len(frac) > a {
		tail = frac[a:]
	}
	// The rest of the fraction, as t/10^k with at most 15 digits: c·t stays
	// below 3600·10^15, well inside a uint64.
	var t, pow uint64 = 0, 1
	for i := 0; i < len(tail) && i < 15; i++ {
		t = t*10 + uint64(tail[i]-'0')
		pow *= 10
	}
	extra := c * t / pow
	if 2*(c*t%pow) >= pow {
		extra++
	}
	add := c*head + extra
	if add > math.MaxInt64-n {
		return 0, false
	}
	return n + add, true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }
