package reconciler

import (
	"fmt"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
)

// durationBuckets reach 600 s: a rollout with verification retries over
// many batches takes minutes, and those must not all land in +Inf.
var durationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// metrics are the reconciler's series of DESIGN.md's table. Labels never
// carry a commit (except the one-series-per-environment info gauge's short
// revision) or a path.
type metrics struct {
	buildInfo      *prometheus.GaugeVec
	reconcileTotal *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	envInfo        *prometheus.GaugeVec
	lastApplied    *prometheus.GaugeVec
	changes        *prometheus.CounterVec
	drift          *prometheus.GaugeVec
	driftOldest    *prometheus.GaugeVec
	verification   *prometheus.CounterVec
	tests          *prometheus.CounterVec
	rollbacks      *prometheus.CounterVec
	endRefused     *prometheus.CounterVec
	hostUp         *prometheus.GaugeVec
	blocked        *prometheus.GaugeVec
	notReady       *prometheus.GaugeVec
	configOK       prometheus.Gauge
	pending        *prometheus.GaugeVec
	pendingSince   *prometheus.GaugeVec
}

// newMetrics creates the series and registers them on reg.
func newMetrics(reg prometheus.Registerer, version string) (*metrics, error) {
	m := &metrics{
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_build_info", Help: "Always 1; labelled with the version of driftless and of Go.",
		}, []string{"version", "goversion"}),
		notReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_environment_not_ready", Help: "1 for the class of trouble an environment is in (reason: transient, stalled, waiting), 0 for the others.",
		}, []string{"environment", "reason"}),
		reconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftless_reconcile_total", Help: "Reconcile runs by result (success, noop, failed, rolled_back).",
		}, []string{"environment", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "driftless_reconcile_duration_seconds", Help: "How long a reconcile run took, plan to end.",
			Buckets: durationBuckets,
		}, []string{"environment"}),
		envInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_environment_info", Help: "Always 1; the applied revision (short) and state of each environment.",
		}, []string{"environment", "revision", "status"}),
		lastApplied: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_last_applied_timestamp_seconds", Help: "When a revision was last applied successfully.",
		}, []string{"environment"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftless_changes_applied_total", Help: "Resource changes applied, by kind and action.",
		}, []string{"environment", "kind", "action"}),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_drift_resources", Help: "Resources whose live state differs from the applied revision, after the last drift pass.",
		}, []string{"environment", "host", "kind", "mode"}),
		driftOldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_drift_oldest_seconds", Help: "Age of the oldest drift not corrected (0 when none).",
		}, []string{"environment"}),
		verification: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftless_verification_total", Help: "Verification checks run, by check and result (pass, fail).",
		}, []string{"environment", "check", "result"}),
		tests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftless_verify_tests_total", Help: "Tests run by junit verification checks, by result (passed, failed, errored, skipped).",
		}, []string{"environment", "result"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftless_rollbacks_total", Help: "Rollbacks, by reason (apply, verify, unreachable, interrupted, manual).",
		}, []string{"environment", "reason"}),
		endRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftless_rollout_end_refused_total", Help: "Ends of successful rollouts the store refused for good (etcd's space quota exceeded, a request too large); each leaves its journal open for the recovery.",
		}, []string{"environment"}),
		hostUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_host_up", Help: "1 when the host was reached at the last observation, 0 otherwise.",
		}, []string{"environment", "host"}),
		blocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_environment_blocked", Help: "1 while a rollback of the environment cannot finish (a host it must restore is unreachable), 0 otherwise.",
		}, []string{"environment"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_promotion_pending", Help: "1 while a revision waits at a gate of the environment (promotion, deploy window, approval), else 0.",
		}, []string{"environment"}),
		pendingSince: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_promotion_pending_since_timestamp_seconds", Help: "Since when the waiting revision has waited at its gates (0 when none waits).",
		}, []string{"environment"}),
		configOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftless_config_last_reload_successful", Help: "1 when the last revision received loaded and validated completely.",
		}),
	}
	for _, c := range []prometheus.Collector{
		m.buildInfo, m.reconcileTotal, m.duration, m.envInfo, m.lastApplied, m.changes,
		m.drift, m.driftOldest, m.verification, m.tests, m.rollbacks, m.endRefused, m.hostUp, m.blocked, m.notReady, m.configOK, m.pending, m.pendingSince,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register reconciler metrics: %w", err)
		}
	}
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	return m, nil
}

// setEnvState keeps exactly one info series per environment, and its
// blocked gauge. A removed environment keeps its info series (its state
// says removed) and loses the gauge, so no alert fires for it.
func (m *metrics) setEnvState(env, short, state, class string) {
	m.envInfo.DeletePartialMatch(prometheus.Labels{"environment": env})
	m.envInfo.WithLabelValues(env, short, state).Set(1)
	if state == status.StateRemoved {
		m.blocked.DeleteLabelValues(env)
		m.notReady.DeletePartialMatch(prometheus.Labels{"environment": env})
		return
	}
	for _, c := range status.Classes() {
		v := 0.0
		if c == class {
			v = 1
		}
		m.notReady.WithLabelValues(env, c).Set(v)
	}
	// Counters exist from 0 as soon as their environment does: Prometheus's
	// increase() does not count a series' first sample, so a counter born
	// at 1 would hide the first rollback or failure from every alert.
	for _, result := range []string{status.ResultSuccess, status.ResultNoop, status.ResultFailed, status.ResultRolledBack} {
		m.reconcileTotal.WithLabelValues(env, result)
	}
	for _, reason := range []string{"apply", "verify", "manual", "interrupted"} {
		m.rollbacks.WithLabelValues(env, reason)
	}
	m.endRefused.WithLabelValues(env)
	blocked := 0.0
	if state == status.StateBlocked {
		blocked = 1
	}
	m.blocked.WithLabelValues(env).Set(blocked)
}

// initChecks makes the verification series of env's checks exist from 0
// before they first run, for the same reason.
func (m *metrics) initChecks(env *config.Environment) {
	for _, h := range env.Hosts {
		for _, c := range h.Checks {
			// The label the results use (verify.Result.Check): never a
			// decrypted value a template wrote into the check.
			name := verify.NameOn(h, c)
			m.verification.WithLabelValues(env.Name, name, "pass")
			m.verification.WithLabelValues(env.Name, name, "fail")
			if c.Kind() == "junit" {
				m.countTests(env.Name, verify.Tests{})
			}
		}
	}
}

// countTests adds a junit check's test counts to
// driftless_verify_tests_total (zero counts make the series exist).
func (m *metrics) countTests(env string, t verify.Tests) {
	for result, n := range map[string]int{"passed": t.Passed, "failed": t.Failed, "errored": t.Errored, "skipped": t.Skipped} {
		m.tests.WithLabelValues(env, result).Add(float64(n))
	}
}

// setPending sets the gate series of an environment: g waiting (nil:
// nothing waits).
func (m *metrics) setPending(env string, g *store.Gate) {
	if g == nil {
		m.pending.WithLabelValues(env).Set(0)
		m.pendingSince.WithLabelValues(env).Set(0)
		return
	}
	m.pending.WithLabelValues(env).Set(1)
	m.pendingSince.WithLabelValues(env).Set(float64(g.Since.Unix()))
}
