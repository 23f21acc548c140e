//go:build !linux

package acquire

import "os"

func isatty(f *os.File) bool { return false }
