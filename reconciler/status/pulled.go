package status

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// PulledEnv is one environment's state on a pull-mode host, as the host
// reports it.
type PulledEnv struct {
	Name           string    `json:"name"`
	Applied        string    `json:"applied"`
	LastGood       string    `json:"last_good"`
	State          string    `json:"state"`
	DriftResources int       `json:"drift_resources"`
	LastResult     string    `json:"last_result,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	LastRun        time.Time `json:"last_run,omitzero"`
}

// PulledHost is the report of a host running `driftless agent --pull`:
// the state of each environment that names it. Received is set by the
// daemon that took the report.
type PulledHost struct {
	Host         string      `json:"host"`
	Version      string      `json:"version,omitempty"`
	Environments []PulledEnv `json:"environments"`
	Received     time.Time   `json:"received,omitzero"`
}

// PulledOf makes a pull-mode host's report from its reconciler's states.
func PulledOf(host, version string, envs []EnvStatus) PulledHost {
	p := PulledHost{Host: host, Version: version, Environments: []PulledEnv{}}
	for _, e := range envs {
		p.Environments = append(p.Environments, PulledEnv{Name: e.Name, Applied: e.Applied, LastGood: e.LastGood,
			State: e.State, DriftResources: e.DriftResources, LastResult: e.LastResult, LastError: e.LastError, LastRun: e.LastRun})
	}
	return p
}

// MaxPulledHosts bounds how many pull-mode hosts a daemon keeps (0 in
// NewPulledHosts).
const MaxPulledHosts = 10000

// PulledHosts keeps the newest report of each pull-mode host, in memory:
// a host reports again every interval, so a restarted daemon shows it
// again within one.
type PulledHosts struct {
	mu    sync.Mutex
	max   int
	hosts map[string]PulledHost
}

// NewPulledHosts keeps up to max hosts (0: MaxPulledHosts).
func NewPulledHosts(max int) *PulledHosts {
	if max <= 0 {
		max = MaxPulledHosts
	}
	return &PulledHosts{max: max, hosts: map[string]PulledHost{}}
}

// Put keeps h as its host's newest report; a new host beyond the bound is
// refused.
func (p *PulledHosts) Put(h PulledHost) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.hosts[h.Host]; !ok && len(p.hosts) >= p.max {
		return fmt.Errorf("already %d pull-mode hosts reported", p.max)
	}
	p.hosts[h.Host] = h
	return nil
}

// List returns every host's newest report, by host name.
func (p *PulledHosts) List() []PulledHost {
	p.mu.Lock()
	out := make([]PulledHost, 0, len(p.hosts))
	for _, h := range p.hosts {
		out = append(out, h)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b PulledHost) int { return strings.Compare(a.Host, b.Host) })
	return out
}
