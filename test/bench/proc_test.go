package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and ')': fields count from the last.
	line := "1234 (we ird) (name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 50 18446744073709551615\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want {
		t.Errorf("cpu = %v, want %v", got, want)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1 2")); err == nil {
		t.Error("short line: no error")
	}
	if _, err := parseStatCPU([]byte("no paren")); err == nil {
		t.Error("no ')': no error")
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tx\nVmPeak:\t  999 kB\nVmRSS:\t    1234 kB\nThreads: 3\n"
	got, err := parseStatusKB([]byte(status), "VmRSS")
	if err != nil || got != 1234*1024 {
		t.Errorf("VmRSS = %d, %v, want %d", got, err, 1234*1024)
	}
	if _, err := parseStatusKB([]byte(status), "VmSwap"); err == nil {
		t.Error("missing key: no error")
	}
	if _, err := parseStatusKB([]byte("VmRSS: many kB\n"), "VmRSS"); err == nil {
		t.Error("malformed value: no error")
	}
}

func TestProcSelf(t *testing.T) {
	rss, err := procRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("procRSS(self) = %d, %v", rss, err)
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatalf("procCPU(self): %v", err)
	}
	if _, err := procRSS(-1); err == nil {
		t.Fatal("procRSS(-1): no error")
	}
}

func TestRaiseNofile(t *testing.T) {
	n, err := raiseNofile()
	if err != nil {
		t.Fatal(err)
	}
	if n < 64 {
		t.Fatalf("open-files limit %d", n)
	}
}
