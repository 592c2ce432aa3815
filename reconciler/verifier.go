package reconciler

import (
	"context"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// runnerVerifier adapts the verify package's Runner (http, tcp, command
// and prometheus checks with retries) to Verifier.
type runnerVerifier struct{ r *verify.Runner }

var _ Verifier = runnerVerifier{}

// VerifyRunner returns a Verifier running every check of a host with r.
func VerifyRunner(r *verify.Runner) Verifier { return runnerVerifier{r: r} }

// Verify runs the host's checks.
func (v runnerVerifier) Verify(ctx context.Context, env string, h *config.Host, t targets.Transport) []CheckResult {
	res := v.r.Run(ctx, env, h, t)
	out := make([]CheckResult, len(res))
	for i, x := range res {
		out[i] = CheckResult{Check: x.Label, OK: x.OK, Reason: x.Reason, Tests: x.Tests}
	}
	return out
}
