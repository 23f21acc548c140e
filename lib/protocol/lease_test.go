package protocol

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestNewLeaseID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewLeaseID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 32 || !ValidLeaseID(id) || id != strings.ToLower(id) {
			t.Fatalf("NewLeaseID() = %q: not 32 lowercase hex digits", id)
		}
		if seen[id] {
			t.Fatalf("NewLeaseID() gave %q twice", id)
		}
		seen[id] = true
	}
}

func TestValidLeaseID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{testLease, true},
		{strings.Repeat("0", 32), true},
		{strings.Repeat("f", 32), true},
		{"", false},
		{strings.Repeat("0", 31), false},
		{strings.Repeat("0", 33), false},
		{strings.Repeat("0", 64), false},
		{strings.ToUpper(testLease), false},
		{"0123456789abcdef0123456789abcdeF", false},
		{"0123456789abcdef0123456789abcdeg", false},
		{"0123456789abcdef0123456789abcde ", false},
		{"0123456789abcdef0123456789abcd,e", false},
		{"0123456789abcdef0123456789abcd\xff", false},
	} {
		if got := ValidLeaseID(tc.id); got != tc.ok {
			t.Errorf("ValidLeaseID(%q) = %v; want %v", tc.id, got, tc.ok)
		}
	}
}

// TestLeaseKey pins the key to SHA-256 of the id's bytes, and the
// fingerprint to the key's first 4 bytes: state files and other servers of
// a cluster depend on them.
func TestLeaseKey(t *testing.T) {
	key := LeaseKey(testLease)
	if got := hex.EncodeToString(key[:]); got != "3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9" {
		t.Errorf("LeaseKey(%q) = %s", testLease, got)
	}
	if got := LeaseFingerprint(key); got != "3eb1bd43" {
		t.Errorf("LeaseFingerprint = %q; want 3eb1bd43", got)
	}
	if LeaseKey(testLease) == LeaseKey(strings.Repeat("0", 32)) {
		t.Error("two ids, one key")
	}
}
