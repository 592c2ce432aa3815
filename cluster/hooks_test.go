package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/test/etcdserver"
)

// A pull request comment relayed to another replica keeps its text: the
// owner of the environment is the one that acts on an /approve, and
// sources.Event leaves the comment out of its JSON. The event is not kept
// under its key once the watchers have it.
func TestRelayedCommentKeepsItsText(t *testing.T) {
	srv := etcdserver.Start(t)
	a := startReplica(t, srv, "a", nil)
	b := startReplica(t, srv, "b", nil)
	got := make(chan sources.Event, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.c.RunHooks(ctx, Relayed{
			Event: func(ev sources.Event) {
				select {
				case got <- ev:
				default:
				}
			},
			Want: func(string, string) {},
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	sent := sources.Event{Kind: "comment", Repository: "o/r", PullRequest: 3, Login: "alice", Comment: "/approve"}
	// The watch may not be set up yet: send until b has it.
	deadline := time.After(10 * time.Second)
	for {
		a.c.HookRelay().Notify(sent)
		select {
		case ev := <-got:
			if ev.Comment != sent.Comment || ev.Login != sent.Login || ev.PullRequest != sent.PullRequest {
				t.Fatalf("relayed event = %+v, want the comment %q by %s on #%d", ev, sent.Comment, sent.Login, sent.PullRequest)
			}
			if kv, err := a.cli.Get(context.Background(), "/test/hooks/event"); err != nil || len(kv.Kvs) != 0 {
				t.Fatalf("the relayed event is kept in etcd (%v): %v", err, kv)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no relayed event within 10 s")
		}
	}
}
