package config

import (
	"os"
	"testing"
)

// TestReplicaName: the configured name wins; without one, the machine's
// hostname names the replica.
func TestReplicaName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ replica, want string }{{"replica-a", "replica-a"}, {"", host}} {
		got, err := (&Cluster{Replica: c.replica}).ReplicaName()
		if err != nil || got != c.want {
			t.Errorf("ReplicaName with replica %q = %q, %v; want %q", c.replica, got, err, c.want)
		}
	}
}
