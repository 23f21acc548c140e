package client_test

import (
	"os"
	"os/user"
	"strconv"
	"testing"

	"github.com/tnl-lock/tnl/lib/client"
)

func TestDefaultID(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	t.Setenv("USER", "alice")
	t.Setenv("LOGNAME", "bob")
	if got, want := client.DefaultID(), "alice@"+host; got != want {
		t.Errorf("with $USER: DefaultID() = %q; want %q", got, want)
	}
	t.Setenv("USER", "")
	if got, want := client.DefaultID(), "bob@"+host; got != want {
		t.Errorf("with $LOGNAME only: DefaultID() = %q; want %q", got, want)
	}
	t.Setenv("LOGNAME", "")
	name := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if got, want := client.DefaultID(), name+"@"+host; got != want {
		t.Errorf("without $USER and $LOGNAME: DefaultID() = %q; want %q", got, want)
	}
}
