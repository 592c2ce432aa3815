package reconciler

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/reconciler/status"
)

// benchEnv declares files file resources on each of hosts local hosts.
func benchEnv(hosts, files int) string {
	var res strings.Builder
	res.WriteString(etc)
	for i := 0; i < files; i++ {
		res.WriteString(fileRes(fmt.Sprintf("/etc/f%03d.conf", i), fmt.Sprintf("value %d\n", i)))
	}
	var hs []string
	for h := 0; h < hosts; h++ {
		hs = append(hs, fmt.Sprintf("h%d", h))
	}
	return envYAML("bench", hs, nil, res.String(), "rollout: {batch: 4}")
}

func quiet(o *Options) { o.Logger = zerolog.Nop() }

// BenchmarkNoopRollout is a converged environment's reconcile: load the
// revision, observe every host (one round trip each), diff, record a noop.
func BenchmarkNoopRollout(b *testing.B) {
	for _, size := range []struct{ hosts, files int }{{1, 100}, {8, 100}} {
		b.Run(fmt.Sprintf("hosts=%d/files=%d", size.hosts, size.files), func(b *testing.B) {
			f := newFixture(b, quiet)
			rev := f.revision(map[string]string{"environments/bench.yaml": benchEnv(size.hosts, size.files)})
			ctx := context.Background()
			if _, err := f.r.ApplyRevision(ctx, rev); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				runs, err := f.r.ApplyRevision(ctx, rev)
				if err != nil || runs[0].Result != status.ResultNoop {
					b.Fatalf("%+v %v", runs, err)
				}
			}
		})
	}
}

// BenchmarkApply changes every file of a host and rolls it out with the
// journal (two synced store writes per resource).
func BenchmarkApply(b *testing.B) {
	f := newFixture(b, quiet)
	ctx := context.Background()
	revs := [2]string{benchEnv(1, 50), strings.ReplaceAll(benchEnv(1, 50), "value", "other")}
	i := 0
	for b.Loop() {
		rev := f.revision(map[string]string{"environments/bench.yaml": revs[i%2]})
		i++
		runs, err := f.r.ApplyRevision(ctx, rev)
		if err != nil || runs[0].Result != status.ResultSuccess {
			b.Fatalf("%+v %v", runs, err)
		}
	}
}
