package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/driftless/driftless/test/etcdserver"
)

// BenchmarkOwnership runs three replicas (each its own etcd client, in
// this process) over 1,000 environments on a real etcd with the
// shortest lease (2 s). It reports how long ownership takes to settle at
// start, and over 20 crashes of a replica (its connection cut, its lease
// left to expire, as a SIGKILL leaves it) how long until every
// environment it owned has another owner: p50 and p99, against the lease
// TTL, the floor etcd imposes on noticing a dead replica.
//
//	go test -run '^$' -bench Ownership -benchtime 1x ./cluster/
func BenchmarkOwnership(b *testing.B) {
	srv := etcdserver.Start(b)
	envs := make([]string, 1000)
	for i := range envs {
		envs[i] = "env-" + time.Duration(i).String()
	}
	names := []string{"a", "b", "c"}
	for range b.N {
		start := time.Now()
		rs := []*replica{}
		for _, n := range names {
			rs = append(rs, startReplica(b, srv, n, envs))
		}
		settle(b, rs, envs, names, time.Minute)
		b.ReportMetric(time.Since(start).Seconds(), "settle_s")
		var takeovers []time.Duration
		for kill := range 20 {
			victim := kill % len(rs)
			rs[victim].crash()
			others := slices.Delete(slices.Clone(rs), victim, victim+1)
			var live []string
			for _, r := range others {
				live = append(live, r.name)
			}
			takeovers = append(takeovers, settle(b, others, envs, live, time.Minute))
			rs[victim] = startReplica(b, srv, rs[victim].name, envs)
			settle(b, rs, envs, names, time.Minute)
		}
		slices.Sort(takeovers)
		b.ReportMetric(takeovers[len(takeovers)/2].Seconds(), "takeover_p50_s")
		b.ReportMetric(takeovers[len(takeovers)*99/100].Seconds(), "takeover_p99_s")
		b.ReportMetric(testTTL.Seconds(), "lease_ttl_s")
		for _, r := range rs {
			r.stop()
		}
	}
}
