//go:build !linux

package cliflags

import "os"

func isatty(f *os.File) bool { return false }
