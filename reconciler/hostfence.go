package reconciler

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
)

// hostFenceDir is where each host keeps, per environment, the highest
// fencing token a replica applied to it with (cluster mode).
const hostFenceDir = "/var/lib/driftless/fence"

// errHostFenced is the exit status of the fence script when the host saw
// a higher token.
const errHostFenced = 3

// fenceHost checks, on the host, that no replica applied the environment
// to it with a higher fencing token than this worker's, and records the
// worker's token, under a lock on the host: a replica paused past its
// lease, resuming after a newer owner wrote the host, is refused before it
// writes. A daemon alone (no Ownership) has nothing to check.
func (r *Reconciler) fenceHost(ctx context.Context, t targets.Transport, env string) error {
	if r.opts.Ownership == nil {
		return nil
	}
	// The worker's fence must still be the cluster's: a replica past
	// its lease (paused, cut off) is not the owner any more, even before
	// its worker is released.
	f, ok := r.fenceOf(env)
	if cur, owned := r.opts.Ownership.Owned(env); !ok || !owned || cur != f {
		return fmt.Errorf("fence the host for %s: %w", env, store.ErrFenced)
	}
	dir := strings.TrimSuffix(t.Root(), "/") + hostFenceDir
	file := path.Join(dir, env)
	script := fmt.Sprintf(`set -e
mkdir -p %[1]s
exec 9>>%[2]s
if command -v flock >/dev/null 2>&1; then flock 9; fi
cur=$(cat %[3]s 2>/dev/null || echo 0)
if [ "$cur" -gt %[4]d ]; then echo "$cur"; exit %[5]d; fi
if [ "$cur" -lt %[4]d ]; then printf '%%s\n' %[4]d > %[6]s; mv %[6]s %[3]s; fi
`, targets.ShellQuote(dir), targets.ShellQuote(file+".lock"), targets.ShellQuote(file), f.Token, errHostFenced, targets.ShellQuote(file+".tmp"))
	res, err := t.Run(ctx, script, nil)
	switch {
	case err != nil:
		return fmt.Errorf("fence the host for %s: %w", env, err)
	case res.Exit == errHostFenced:
		return fmt.Errorf("fence the host for %s: a newer owner (token %s) applied to it, this replica has %d: %w",
			env, strings.TrimSpace(string(res.Stdout)), f.Token, store.ErrFenced)
	case res.Exit != 0:
		return fmt.Errorf("fence the host for %s: exit %d: %s", env, res.Exit, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}
