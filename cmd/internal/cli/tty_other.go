//go:build !linux

package cli

import "os"

func isatty(f *os.File) bool { return false }
