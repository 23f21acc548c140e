package protocol

import (
	"errors"
	"testing"
)

func TestCheckLimit(t *testing.T) {
	for _, tc := range []struct {
		mode  Mode
		limit int
		want  error
	}{
		{Exclusive, 1, nil},
		{Exclusive, 2, nil},
		{Exclusive, MaxLimit, nil},
		{Shared, 1, nil},
		{Exclusive, 0, ErrLimitRange},
		{Exclusive, -1, ErrLimitRange},
		{Exclusive, MaxLimit + 1, ErrLimitRange},
		{Shared, 0, ErrLimitRange},
		{Shared, MaxLimit + 1, ErrLimitRange},
		{Shared, 2, ErrSharedLimit},
		{Shared, MaxLimit, ErrSharedLimit},
	} {
		if err := CheckLimit(tc.mode, tc.limit); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckLimit(%v, %d) = %v; want %v", tc.mode, tc.limit, err, tc.want)
		}
	}
	if MaxLimit != 1000000 {
		t.Errorf("MaxLimit = %d; the contract and the man pages say 1000000", MaxLimit)
	}
}
