package lockd

import (
	"cmp"
	"slices"
)

func sortInfos(s []LockInfo) {
	slices.SortFunc(s, func(a, b LockInfo) int { return cmp.Compare(a.Name, b.Name) })
}
