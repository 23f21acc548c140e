package server_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tnl-lock/tnl/lib/server"
)

// TestShutdownRefused: .server-shutdown never stops a server for a request
// without the admin token (CONTRACT.md §1.1), also on a server that has no
// admin token at all, where an empty token must not match the empty one
// configured. Every server here has an OnShutdown hook, as tnl-server's is
// always set: without one the server refuses anyway, which is how the legacy
// tests, on Config{}, could not notice a broken check. The refusal is exact
// ("bad-action", or the auth error on a server that wants a token), the
// server logs it and goes on serving, and the hook is not called.
//
// The hook runs in a goroutine of its own after the answer, so its counter
// alone could miss a call; the answer and the log line, both written before
// the answer is read, are what tell deterministically.
func TestShutdownRefused(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        server.Config
		noHook     bool
		line, want string
	}{
		{name: "no admin token, no auth", line: ".server-shutdown\n", want: "bad-action\n"},
		{name: "no admin token, empty auth", line: ".server-shutdown,auth:\n", want: "bad-action\n"},
		{name: "no admin token, some auth", line: ".server-shutdown,auth:x\n", want: "bad-action\n"},
		{name: "auth token only, no auth", cfg: server.Config{AuthToken: "s3cret"},
			line: ".server-shutdown\n", want: "err,authentication required\n"},
		{name: "auth token only, the auth token", cfg: server.Config{AuthToken: "s3cret"},
			line: ".server-shutdown,auth:s3cret\n", want: "bad-action\n"},
		{name: "both tokens, the auth token", cfg: server.Config{AuthToken: "s3cret", AdminToken: "adm1n"},
			line: ".server-shutdown,auth:s3cret\n", want: "bad-action\n"},
		{name: "admin token, empty auth", cfg: server.Config{AdminToken: "adm1n"},
			line: ".server-shutdown,auth:\n", want: "bad-action\n"},
		{name: "admin token, a longer one", cfg: server.Config{AdminToken: "adm1n"},
			line: ".server-shutdown,auth:adm1nx\n", want: "bad-action\n"},
		{name: "admin token, no hook", cfg: server.Config{AdminToken: "adm1n"}, noHook: true,
			line: ".server-shutdown,auth:adm1n\n", want: "bad-action\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			cfg := tc.cfg
			if !tc.noHook {
				cfg.OnShutdown = func() { calls.Add(1) }
			}
			ts := start(t, cfg)
			if got := exchange(t, ts.addr, tc.line); got != tc.want {
				t.Fatalf("%q: got %q, want %q", tc.line, got, tc.want)
			}
			if logs := ts.logs.String(); strings.Contains(logs, "shutting down") {
				t.Errorf("the server logged a shutdown:\n%s", logs)
			}
			if tc.want == "bad-action\n" && !strings.Contains(ts.logs.String(), `msg="refused .server-shutdown from a peer"`) {
				t.Errorf("no log line for the refusal:\n%s", ts.logs.String())
			}
			ping := ".ping\n"
			if cfg.AuthToken != "" {
				ping = ".ping,auth:" + cfg.AuthToken + "\n"
			}
			if got := exchange(t, ts.addr, ping); got != "pong\n" {
				t.Fatalf("after the refusal: %q, want pong", got)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("OnShutdown called %d times", n)
			}
		})
	}
}

// TestShutdownRefusedInConnection: on a server with a hook and no admin
// token, .server-shutdown from a legacy holder or inside a session is
// answered bad-action and changes nothing: the lock stays held, the session
// goes on.
func TestShutdownRefusedInConnection(t *testing.T) {
	var calls atomic.Int32
	ts := start(t, server.Config{OnShutdown: func() { calls.Add(1) }})
	script(t, ts.addr,
		"0>lock,name:x\n", "0<ok\n",
		"0>.server-shutdown\n", "0<bad-action\n",
		"1>.session\n", "1<session,dead-peer-timeout:30\n",
		"1>.server-shutdown\n", "1<bad-action\n",
		"1>.server-shutdown,auth:\n", "1<bad-action\n",
		"1>lock,name:x\n", "1<not-granted,name:x\n",
		"0>.keepalive\n", "0<alive\n",
		"1>.keepalive\n", "1<alive\n",
	)
	if strings.Contains(ts.logs.String(), "shutting down") || calls.Load() != 0 {
		t.Errorf("shut down (%d calls):\n%s", calls.Load(), ts.logs.String())
	}
}
