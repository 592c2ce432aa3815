// Package cluster shares environments between replicas of the daemon
// through etcd: each replica registers as a member on a lease (an etcd
// concurrency session), every replica computes from the live members which
// one should own each environment (rendezvous hashing), and the owner holds
// the environment's ownership key on its lease. The key's create revision
// is the fencing token: a later owner creates the key anew and gets a
// higher one, so the store (store.Fenced) and the hosts refuse a stale
// owner. A replica that cannot renew its lease stops owning anything a
// margin before the lease could expire in etcd, so two owners are never
// possible.
package cluster

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/driftless/driftless/reconciler/store"
)

// Options configures a Cluster.
type Options struct {
	// Client is connected to etcd; it stays the caller's.
	Client *clientv3.Client
	// Prefix starts every key (config.Cluster.Prefix, ending in '/').
	Prefix string
	// Replica is this replica's name, unique among the replicas.
	Replica string
	// LeaseTTL is the lease's time to live, a whole number of seconds.
	LeaseTTL time.Duration
	// Release, when set, is called before this replica gives an
	// environment up (another replica should own it now, or it is no
	// longer declared), and must return only once nothing of this replica
	// works on the environment any more. Owned already answers false for
	// it during the call.
	Release func(env string)
	// Changed, when set, is called after the set of environments this
	// replica owns changed. It must not block.
	Changed func()
	Logger  zerolog.Logger
	// Registerer receives the cluster's metrics.
	Registerer prometheus.Registerer
}

// Cluster is this replica's view of the cluster and the environments it
// owns. Run maintains it; the other methods read a snapshot.
type Cluster struct {
	o   Options
	ttl time.Duration
	// margin is how long before the lease could expire in etcd (counted
	// from the last renewal seen) this replica stops owning.
	margin time.Duration
	m      *metrics
	envsCh chan []string
	// valid is when this replica stops trusting its lease (Unix
	// nanoseconds; 0: no lease). The session's renew goroutine moves it
	// on at each renewal etcd answered, whatever the session loop is
	// doing (a Release hook waiting for a rollout to stop).
	valid atomic.Int64
	// gained (capacity one) says the environments this replica owns
	// changed: ServeRequests looks for requests waiting for them.
	gained chan struct{}

	mu   sync.Mutex
	view view
}

// view is what the readers see.
type view struct {
	members []string
	// mine maps each environment this replica owns to its token.
	mine map[string]int64
	// holders maps each environment with an owner to the owner's name.
	holders map[string]string
}

// New checks the options and registers the metrics. Nothing runs until Run.
func New(o Options) (*Cluster, error) {
	if o.Client == nil || o.Replica == "" || o.LeaseTTL < time.Second {
		return nil, errors.New("cluster: a client, a replica name and a lease TTL of at least 1s are needed")
	}
	m, err := newMetrics(o.Registerer, o.Replica)
	if err != nil {
		return nil, err
	}
	margin := max(o.LeaseTTL/5, 500*time.Millisecond)
	return &Cluster{o: o, ttl: o.LeaseTTL, margin: margin, m: m, envsCh: make(chan []string, 1), gained: make(chan struct{}, 1),
		view: view{mine: map[string]int64{}, holders: map[string]string{}}}, nil
}

// SetEnvironments hands Run the declared environments; the newest call
// wins.
func (c *Cluster) SetEnvironments(envs []string) {
	envs = append([]string(nil), envs...)
	select {
	case <-c.envsCh:
	default:
	}
	c.envsCh <- envs
}

// ownerKey is the ownership key of env.
func (c *Cluster) ownerKey(env string) string { return c.o.Prefix + "owners/" + env }

// memberKey is the membership key of a replica.
func (c *Cluster) memberKey(name string) string { return c.o.Prefix + "members/" + name }

// Replica is this replica's name.
func (c *Cluster) Replica() string { return c.o.Replica }

// Owned returns the fence of env when this replica owns it now: its lease
// was renewed recently enough that no other replica can own it.
func (c *Cluster) Owned(env string) (store.Fence, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tok, ok := c.view.mine[env]
	if !ok || !c.leaseValid() {
		return store.Fence{}, false
	}
	return store.Fence{Key: c.ownerKey(env), Token: tok}, true
}

// OwnedEnvironments lists the environments this replica owns now, sorted.
func (c *Cluster) OwnedEnvironments() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leaseValid() {
		return nil
	}
	out := make([]string, 0, len(c.view.mine))
	for env := range c.view.mine {
		out = append(out, env)
	}
	sort.Strings(out)
	return out
}

// Owners maps every environment with an owner to the owner's name, as
// this replica last saw etcd.
func (c *Cluster) Owners() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.view.holders))
	for env, r := range c.view.holders {
		out[env] = r
	}
	return out
}

// Members lists the live replicas, sorted.
func (c *Cluster) Members() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.view.members...)
}

// Ready reports whether this replica holds a lease it can trust: false
// while etcd is lost past the margin, until a new session is set up.
func (c *Cluster) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaseValid()
}

// leaseValid reports whether this replica's lease can be trusted now.
func (c *Cluster) leaseValid() bool { return time.Now().UnixNano() < c.valid.Load() }
