package cluster

import (
	"crypto/sha256"
	"encoding/binary"
)

// Owner picks an environment's owner among the live members by
// rendezvous (highest random weight) hashing: every member scores the
// environment, the highest score wins. Every replica computes the same
// answer from the same member list, with no coordination; a member that
// joins takes from each other member only the environments it now
// scores highest on (about 1/n of them), and a member that leaves hands
// out only its own. It returns "" when there is no member.
func Owner(env string, members []string) string {
	best, owner := uint64(0), ""
	for _, m := range members {
		if s := score(env, m); owner == "" || s > best || s == best && m < owner {
			best, owner = s, m
		}
	}
	return owner
}

func score(env, member string) uint64 {
	b := make([]byte, 0, len(env)+1+len(member))
	b = append(append(append(b, env...), 0), member...)
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[:8])
}
