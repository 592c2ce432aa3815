package scale

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
)

// scanResult is what one drift scan of the fleet found and cost.
type scanResult struct {
	Wall time.Duration
	// RoundTrips is the sum over hosts of the remote calls made to observe
	// (the dial not included).
	RoundTrips int64
	// Drifted and Unknown count, per host, the changes that are not
	// NoChange and the resources whose probe failed.
	Drifted map[string]int
	Unknown map[string][]string
}

// scan observes and diffs every host of the fleet with at most par hosts
// at once, as the reconciler does: each host's connection from the pool,
// then targets.PlanHost through the transport via gives for it (the
// host's agent). An error reaching a host fails the scan.
func scan(ctx context.Context, pool *ssh.Pool, fleet []*hosts.Host, rs []config.Resource, par int,
	via func(*ssh.Transport, *hosts.Host) targets.Transport) (scanResult, error) {
	drivers := targets.Drivers()
	res := scanResult{Drifted: map[string]int{}, Unknown: map[string][]string{}}
	var mu sync.Mutex
	var rt atomic.Int64
	start := time.Now()
	errs := ssh.ForEach(ctx, par, fleet, func(ctx context.Context, h *hosts.Host) error {
		t, err := pool.Get(ctx, h.Name, ssh.Config{Address: h.Address})
		if err != nil {
			return fmt.Errorf("connect to %s: %w", h.Name, err)
		}
		before := t.RoundTrips()
		changes, err := targets.PlanHost(ctx, via(t, h), drivers, rs)
		rt.Add(t.RoundTrips() - before)
		if changes == nil {
			return fmt.Errorf("scan %s: %w", h.Name, err)
		}
		var unknown []string
		for _, e := range joined(err) {
			var oe *targets.ObserveError
			if !errors.As(e, &oe) {
				return fmt.Errorf("scan %s: %w", h.Name, e)
			}
			unknown = append(unknown, oe.ID)
		}
		drifted := 0
		for _, c := range changes {
			if c.Action != targets.NoChange {
				drifted++
			}
		}
		mu.Lock()
		res.Drifted[h.Name], res.Unknown[h.Name] = drifted, unknown
		mu.Unlock()
		return nil
	})
	res.Wall = time.Since(start)
	res.RoundTrips = rt.Load()
	return res, errors.Join(errs...)
}

// joined splits an error made by errors.Join into its parts.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// check says how res differs from what m declares: every host drifted by
// exactly m.Drifted() resources, and only its services unknown (kind-1
// hosts run no systemd).
func (res scanResult) check(fleet []*hosts.Host, m mix) error {
	var errs []error
	for _, h := range fleet {
		if got := res.Drifted[h.Name]; got != m.Drifted() {
			errs = append(errs, fmt.Errorf("%s: %d resources drifted, want %d", h.Name, got, m.Drifted()))
		}
		u := res.Unknown[h.Name]
		if len(u) != m.Services {
			errs = append(errs, fmt.Errorf("%s: %d resources unknown (%v), want the %d services", h.Name, len(u), u, m.Services))
			continue
		}
		for i, id := range u {
			if want := "service:" + baseServices[i]; id != want {
				errs = append(errs, fmt.Errorf("%s: unknown %s, want %s", h.Name, id, want))
			}
		}
	}
	return errors.Join(errs...)
}

// memPeak samples the Go heap while a scan runs.
type memPeak struct {
	stop chan struct{}
	done chan struct{}
	// HeapInuse and Sys are the largest values seen, in bytes.
	HeapInuse, Sys uint64
}

// startMemPeak samples runtime.MemStats every 5 ms until Stop.
func startMemPeak() *memPeak {
	p := &memPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			p.HeapInuse, p.Sys = max(p.HeapInuse, ms.HeapInuse), max(p.Sys, ms.Sys)
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// Stop ends the sampling; the fields are final afterwards.
func (p *memPeak) Stop() {
	close(p.stop)
	<-p.done
}
