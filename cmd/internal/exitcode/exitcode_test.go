package exitcode

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

type coded struct{ code int }

func (c coded) Error() string { return "coded" }
func (c coded) ExitCode() int { return c.code }

func TestOf(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain error is tnl's own failure", base, Unreachable},
		{"Error", &Error{Code: Lost, Err: base}, Lost},
		{"wrapped Error", fmt.Errorf("ctx: %w", &Error{Code: Conflict, Err: base}), Conflict},
		{"outermost wins", &Error{Code: Usage, Err: &Error{Code: Lost, Err: base}}, Usage},
		{"any Coder", fmt.Errorf("x: %w", coded{42}), 42},
		{"New", New(NotFound, "cannot run %q: %w", "x", base), NotFound},
		{"Wrap", Wrap(NotExecutable, base), NotExecutable},
		{"Silent", Silent(7), 7},
		{"WithHint keeps the status", WithHint(New(Usage, "bad"), "do this"), Usage},
		{"WithHint on a plain error", WithHint(base, "do this"), Unreachable},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of() = %d, want %d", tc.name, got, tc.want)
		}
	}
	if Wrap(Lost, nil) != nil || WithHint(nil, "h") != nil {
		t.Error("Wrap/WithHint of nil must be nil")
	}
}

func TestNewWraps(t *testing.T) {
	base := errors.New("connection refused")
	err := New(Unreachable, "cannot reach server %s: %w", "127.0.0.1:1", base)
	if !errors.Is(err, base) {
		t.Error("New must keep %w")
	}
	if got, want := err.Error(), "cannot reach server 127.0.0.1:1: connection refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestPrint(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		out  string
		code int
	}{
		{"nil", nil, "", 0},
		{"message", New(Conflict, "lock build: not granted"), "tnl-do: lock build: not granted\n", 123},
		{"hint", WithHint(New(Usage, "unexpected argument x"), "put -- before the command"),
			"tnl-do: unexpected argument x\ntnl-do: hint: put -- before the command\n", 2},
		{"silent", Silent(42), "", 42},
		{"plain", errors.New("oops"), "tnl-do: oops\n", 125},
	} {
		var b strings.Builder
		code := Print(&b, "tnl-do", tc.err)
		if code != tc.code || b.String() != tc.out {
			t.Errorf("%s: Print = %d %q, want %d %q", tc.name, code, b.String(), tc.code, tc.out)
		}
	}
}

func TestFromWaitStatus(t *testing.T) {
	// Linux encodes an exit status in bits 8-15 and a fatal signal in bits 0-6.
	for _, tc := range []struct {
		ws   syscall.WaitStatus
		want int
	}{
		{0, 0},
		{1 << 8, 1},
		{42 << 8, 42},
		{255 << 8, 255},
		{syscall.WaitStatus(syscall.SIGTERM), 143},
		{syscall.WaitStatus(syscall.SIGKILL), 137},
		{syscall.WaitStatus(syscall.SIGINT), 130},
		{syscall.WaitStatus(syscall.SIGQUIT) | 0x80, 131}, // with core dump
	} {
		if got := FromWaitStatus(tc.ws); got != tc.want {
			t.Errorf("FromWaitStatus(%#x) = %d, want %d", uint32(tc.ws), got, tc.want)
		}
	}
	if FromSignal(syscall.SIGUSR1) != 138 {
		t.Error("FromSignal(USR1) != 138")
	}
}
