package protocol

import (
	"errors"
	"strconv"
)

// Errors of CheckLimit; callers put them in their own words (a flag's
// name, "err,invalid limit: ..." on the wire). Test with errors.Is.
var (
	// ErrLimitRange: a semaphore limit below 1 or above MaxLimit.
	ErrLimitRange = errors.New("want a number from 1 to " + strconv.Itoa(MaxLimit))
	// ErrSharedLimit: a limit above 1 on a shared lock.
	ErrSharedLimit = errors.New("a shared lock has no limit")
)

// CheckLimit says whether a lock of mode may be asked for with a semaphore
// limit of limit holders: 1 to MaxLimit, and a shared lock only 1 (it has
// no limit: every shared holder shares it). A request that gives no limit
// has limit 1. The client and the commands check with it before sending,
// so that a mistake is told in the caller's words, not the server's.
func CheckLimit(mode Mode, limit int) error {
	if limit < 1 || limit > MaxLimit {
		return ErrLimitRange
	}
	if mode == Shared && limit > 1 {
		return ErrSharedLimit
	}
	return nil
}
