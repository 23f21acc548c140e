package protocol

import (
	"net"
	"strconv"
	"testing"
)

func TestDefaultAddr(t *testing.T) {
	if want := net.JoinHostPort(DefaultHost, strconv.Itoa(DefaultPort)); DefaultAddr != want {
		t.Errorf("DefaultAddr = %q; want %q", DefaultAddr, want)
	}
}
