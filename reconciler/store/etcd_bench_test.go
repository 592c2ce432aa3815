package store

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/etcdserver"
)

// retentionEnvs and retentionRuns size BenchmarkEtcdRetention: a thousand
// environments, each with more runs than the store keeps.
const (
	retentionEnvs = 1000
	retentionRuns = EtcdHistoryRetention + 5
)

// BenchmarkEtcdRetention fills a real etcd with a thousand environments,
// each a record and 105 runs (so that the retention of 100 prunes), lets
// the store's compaction run, and reports etcd's database size and the
// part in use against the floor: the bytes of the values the store keeps
// (records and the runs retained). It also reports the etcd requests of
// each store operation of a pass, counted from etcd's own metrics.
//
//	go test -run '^$' -bench EtcdRetention -benchtime 1x ./reconciler/store/
func BenchmarkEtcdRetention(b *testing.B) {
	srv := etcdserver.Start(b)
	cli := etcdClient(b, srv)
	box, err := secrets.NewBox()
	if err != nil {
		b.Fatal(err)
	}
	s, err := OpenEtcd(EtcdOptions{Client: cli, Prefix: "/bench/", Box: box, CompactEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for range b.N {
		fillEnvironments(b, s)
	}
	b.StopTimer()
	ctx := context.Background()
	before, err := cli.Status(ctx, srv.Endpoint())
	if err != nil {
		b.Fatal(err)
	}
	// What the compactor does every period: compact to a revision seen
	// before.
	s.timeout = time.Minute // one compaction of the whole fill
	s.compact(ctx, s.compact(ctx, 0))
	after, err := cli.Status(ctx, srv.Endpoint())
	if err != nil {
		b.Fatal(err)
	}
	resp, err := cli.Get(ctx, "/bench/", clientv3.WithPrefix())
	if err != nil {
		b.Fatal(err)
	}
	payload := 0
	for _, kv := range resp.Kvs {
		payload += len(kv.Key) + len(kv.Value)
	}
	b.ReportMetric(float64(len(resp.Kvs)), "keys")
	b.ReportMetric(float64(payload)/1e6, "payload_MB")
	b.ReportMetric(float64(before.DbSize)/1e6, "db_MB")
	b.ReportMetric(float64(after.DbSizeInUse)/1e6, "in_use_after_compaction_MB")
	b.ReportMetric(float64(after.DbSizeInUse)/float64(payload), "in_use/payload")
	b.ReportMetric(float64(after.DbSizeInUse)/retentionEnvs/1e3, "in_use_kB/env")
	reportRequests(b, srv, s)
}

// fillEnvironments writes every environment's record and runs, 32 at once.
func fillEnvironments(b *testing.B, s *EtcdStore) {
	envs := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range envs {
				name := fmt.Sprintf("env-%04d", i)
				rec := EnvRecord{Name: name, Applied: sources.Revision{Commit: strings.Repeat("a", 40)}, LastGood: sources.Revision{Commit: strings.Repeat("b", 40)},
					State: "synced", LastResult: "success", LastRun: time.Now()}
				if err := s.PutEnv(rec); err != nil {
					b.Error(err)
					return
				}
				for range retentionRuns {
					if _, err := s.AddRun(benchRun(name)); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	for i := range retentionEnvs {
		envs <- i
	}
	close(envs)
	wg.Wait()
}

// benchRun is a rollout's run: five resources changed on two hosts, with
// short diffs.
func benchRun(env string) Run {
	r := Run{Environment: env, Revision: sources.Revision{Commit: strings.Repeat("c", 40), Tree: strings.Repeat("d", 40)},
		Trigger: "webhook", Start: time.Now(), End: time.Now(), Result: "success", Changes: 5}
	for i := range 5 {
		r.Changed = append(r.Changed, ResourceChange{Host: fmt.Sprint("web-", i%2), Resource: fmt.Sprint("file:/etc/app/conf-", i),
			Action: "update", Diff: strings.Repeat("-old line\n+new line\n", 10)})
	}
	return r
}

// reportRequests counts the etcd requests of each store operation of a
// pass (etcd's grpc_server_handled_total before and after).
func reportRequests(b *testing.B, srv *etcdserver.Server, s *EtcdStore) {
	entries := make([]JournalEntry, 10)
	for i := range entries {
		entries[i] = JournalEntry{Host: "web-0", Resource: config.Resource{Kind: "file", Name: fmt.Sprint("/etc/r", i), Spec: &targets.FileSpec{Content: "x"}},
			Snapshot: targets.State{Present: true, Content: []byte("y")}}
	}
	var seqs []uint64
	ops := []struct {
		name string
		do   func() error
	}{
		{"PutEnv", func() error { return s.PutEnv(EnvRecord{Name: "req"}) }},
		{"AddRun", func() error { _, err := s.AddRun(benchRun("req")); return err }},
		{"BeginJournal", func() error { return s.BeginJournal(Journal{Environment: "req"}) }},
		{"RecordSnapshots_10", func() (err error) { seqs, err = s.RecordSnapshots("req", entries); return err }},
		{"FinishEntries_10", func() error { return s.FinishEntries("req", seqs, nil) }},
		{"CompleteJournal", func() error { _, err := s.CompleteJournal(EnvRecord{Name: "req"}, benchRun("req")); return err }},
		{"MarkDelivery", func() error {
			_, err := s.MarkDelivery("github", []string{"id", "body"}, time.Now(), time.Hour)
			return err
		}},
	}
	rollout := 0.0
	for _, op := range ops {
		n0 := etcdRequests(b, srv)
		if err := op.do(); err != nil {
			b.Fatalf("%s: %v", op.name, err)
		}
		n := etcdRequests(b, srv) - n0
		if op.name != "PutEnv" && op.name != "AddRun" && op.name != "MarkDelivery" {
			rollout += n
		}
		b.ReportMetric(n, "requests_"+op.name)
	}
	// A rollout on one host batch: journal, snapshots, finish, complete
	// (with the record and the run).
	b.ReportMetric(rollout, "requests_rollout_of_one_host_batch")
}

// etcdRequests sums grpc_server_handled_total of etcd's KV and lease
// services from its /metrics.
func etcdRequests(b *testing.B, srv *etcdserver.Server) float64 {
	resp, err := http.Get(srv.Endpoint() + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "grpc_server_handled_total{") || !(strings.Contains(l, `grpc_service="etcdserverpb.KV"`) || strings.Contains(l, `grpc_method="LeaseGrant"`)) {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}
