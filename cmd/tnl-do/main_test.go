package main

import (
	"io"
	"reflect"
	"slices"
	"testing"

	"github.com/tnl-lock/tnl/cmd/internal/cli"
)

// The fast path must agree with kong on every line it accepts, and leave
// every other line to kong.
func TestFastParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		wait string // $TNL_WAIT; "-" for unset
		fast bool
	}{
		{[]string{"x", "--", "true"}, "-", true},
		{[]string{"build.1", "--", "sh", "-c", "exit 3"}, "-", true},
		{[]string{"x", "--", "true"}, "", true},
		{[]string{"x", "--", "true"}, "5", true},
		{[]string{"x", "--", "true"}, "inf", true},
		{[]string{"x", "--", "true"}, "soon", false},
		{[]string{"-v", "x", "--", "true"}, "-", false},
		{[]string{"x", "-v", "--", "true"}, "-", false},
		{[]string{"x", "true"}, "-", false},
		{[]string{"--", "true"}, "-", false},
		{[]string{"--help", "--", "true"}, "-", false},
	} {
		if tc.wait == "-" {
			t.Setenv("TNL_WAIT", "")
			// t.Setenv cannot unset; LookupEnv sees "", which both read as 0.
		} else {
			t.Setenv("TNL_WAIT", tc.wait)
		}
		i := slices.Index(tc.args, "--")
		head, dashdash := tc.args, false
		if i >= 0 {
			head, dashdash = tc.args[:i], true
		}
		fc, ok := fastParse(head, dashdash)
		if ok != tc.fast {
			t.Errorf("%q (TNL_WAIT=%q): fast path %v, want %v", tc.args, tc.wait, ok, tc.fast)
			continue
		}
		if !ok {
			continue
		}
		var kc grammar
		p, err := cli.New(prog, description, &kc, io.Discard, io.Discard, "x")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := cli.Parse(p, head); err != nil {
			t.Fatalf("%q: kong: %v", tc.args, err)
		}
		if !reflect.DeepEqual(fc, kc) {
			t.Errorf("%q (TNL_WAIT=%q):\nfast %+v\nkong %+v", tc.args, tc.wait, fc, kc)
		}
	}
}
