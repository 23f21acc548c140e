package main

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestHeldNull(t *testing.T) {
	addr := nullAddr(t)
	res := heldConns(context.Background(), "null", addr, os.Getpid(), 300, 10*time.Millisecond)
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	if res.Locks != 300 || res.Ops != 300 || res.RSSBefore <= 0 || res.RSSAtGrant <= 0 || res.RSSAfter <= 0 || res.Case != "conn" {
		t.Errorf("heldConns: %+v", res)
	}
	res = heldSession(context.Background(), "null", addr, os.Getpid(), 20_000, 3, 0)
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	if res.Locks != 20_000 || res.OpsPerSec <= 0 || res.Case != "session" {
		t.Errorf("heldSession: %+v", res)
	}
}

func TestHeldErrors(t *testing.T) {
	// A server that refuses the lock.
	res := heldConns(context.Background(), "x", scripted(t, "not-granted\n"), os.Getpid(), 1, 0)
	if res.Err == "" {
		t.Error("heldConns: a refused lock is not an error")
	}
	// A session server whose second answer is wrong.
	res = heldSession(context.Background(), "x", scripted(t, "session,dead-peer-timeout:30\n", "ok,name:s0,token:1\n", "not-granted,name:s1\n"), os.Getpid(), 3, 1, 0)
	if res.Err == "" {
		t.Error("heldSession: a refused lock is not an error")
	}
}
