package etcdserver

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartStopRestart writes a key through the Go client (v3.7 against
// Debian's 3.4 server), which Handled counts as one put, kills the member, sees a read fail, restarts it
// on the same ports and data and reads the key back.
func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before, err := s.Handled()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	after, err := s.Handled()
	if err != nil {
		t.Fatal(err)
	}
	if n := after["etcdserverpb.KV/Put"] - before["etcdserverpb.KV/Put"]; n != 1 {
		t.Fatalf("etcd counted %v puts for one", n)
	}
	s.Kill()
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = cli.Get(short, "k")
	cancelShort()
	if err == nil {
		t.Fatal("a read succeeded while etcd was killed")
	}
	s.Restart()
	resp, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("after restart k = %v, want v1", resp.Kvs)
	}
	s.Stop()
	s.Stop() // stopping a stopped member does nothing
}
