package hold

import (
	"os/exec"
	"testing"
)

// TestShellQuote: what --ttl prints reads back in sh as the value given,
// quotes and all, which no lock name or id has today.
func TestShellQuote(t *testing.T) {
	for _, s := range []string{"deploy", "it's", "''", "a'b'c", "$(x) `y` \\ \"z\"", ""} {
		q := shellQuote(s)
		if s == "it's" && q != `'it'\''s'` {
			t.Errorf("shellQuote(%q) = %s", s, q)
		}
		out, err := exec.Command("sh", "-c", "printf %s "+q).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh read %s as %q (%v), want %q", q, out, err, s)
		}
	}
}
