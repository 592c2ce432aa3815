package reconciler

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
)

// hostFenceDir is where each host keeps, per environment, the highest
// fencing token a replica applied to it with (cluster mode), and the
// record of the replicas' writes (ENV.log).
const hostFenceDir = "/var/lib/driftless/fence"

// errHostFenced is the exit status of the fence script when the host saw
// a higher token.
const errHostFenced = 3

// Operations named in a host's write record.
const (
	hostOpApply    = "apply"
	hostOpRollback = "rollback"
	hostOpRecover  = "recover"
)

// fenceHost checks, on the host, that no replica applied the environment
// to it with a higher fencing token than this worker's, records the
// worker's token, and opens the record of the writes that follow, all
// under a lock on the host: a replica paused past its lease, resuming
// after a newer owner wrote the host, is refused before it writes. The
// caller calls end once its writes are done (or given up): it closes the
// record. A daemon alone (no Ownership) has nothing to check or record;
// end is then a no-op, as it is when err is not nil.
//
// The record, ENV.log beside the fence file, has one line per event,
// "begin|end UNIXNANOS TOKEN OP "REPLICA"": every interval of writes a
// replica made on the host, with the token it owned the environment with
// and the host's clock. Lines are appended under the same lock, in the
// order they happened on the host.
//
// A transport that implements targets.HostFencer (the local transport,
// in process; the agent) does this in Go on the host
// (targets.MarkHostFence); any other runs the fence script, one shell per
// event.
//
// The context returned carries the worker's fence (targets.WithHostFence):
// each write and apply request made with it is checked again on the host
// (the agent, or the local transport in process), under the same lock,
// and refused when a newer owner fenced the host since, which covers a
// replica paused between its check of ownership and its host call.
func (r *Reconciler) fenceHost(ctx context.Context, t targets.Transport, env, op string) (_ context.Context, end func(), err error) {
	end = func() {}
	if r.opts.Ownership == nil {
		return ctx, end, nil
	}
	// The worker's fence must still be the cluster's: a replica past
	// its lease (paused, cut off) is not the owner any more, even before
	// its worker is released.
	f, ok := r.fenceOf(env)
	if cur, owned := r.opts.Ownership.Owned(env); !ok || !owned || cur != f {
		return ctx, end, fmt.Errorf("fence the host for %s: %w", env, store.ErrFenced)
	}
	hf := targets.HostFence{Env: env, Token: f.Token, Dir: strings.TrimSuffix(t.Root(), "/") + hostFenceDir}
	m := targets.FenceMark{Fence: hf, Event: targets.FenceBegin, Op: op, Replica: r.opts.Ownership.Replica()}
	mark := func(ctx context.Context, m targets.FenceMark) error { return fenceScript(ctx, t, m) }
	if hfr, ok := t.(targets.HostFencer); ok {
		mark = hfr.MarkHostFence
	}
	if err := mark(ctx, m); err != nil {
		return ctx, end, fmt.Errorf("fence the host for %s: %w", env, hostWriteErr(err))
	}
	return targets.WithHostFence(ctx, hf), func() {
		// The record is closed even when the writes were cut short by a
		// release or a shutdown: the replica stopped writing.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.HostTimeout)
		defer cancel()
		m.Event = targets.FenceEnd
		if err := mark(ctx, m); err != nil {
			r.log.Warn().Err(err).Str("environment", env).Msg("cannot close the record of this replica's writes on the host")
		}
	}, nil
}

// fenceScript records m on a host with the fence script, for a transport
// that cannot do it in Go on the host: the same lock, files and lines as
// targets.MarkHostFence, one shell run.
func fenceScript(ctx context.Context, t targets.Transport, m targets.FenceMark) error {
	file := path.Join(m.Fence.Dir, m.Fence.Env)
	lock := fmt.Sprintf(`exec 9>>%s
if command -v flock >/dev/null 2>&1; then flock 9; fi
`, targets.ShellQuote(file+".lock"))
	record := fmt.Sprintf(`printf '%%s %%s %%s\n' %s "$(date +%%s%%N)" %s >> %s
`, m.Event, targets.ShellQuote(fmt.Sprintf("%d %s %s", m.Fence.Token, m.Op, strconv.Quote(m.Replica))), targets.ShellQuote(file+".log"))
	script := "set -e\n" + lock + record
	if m.Event == targets.FenceBegin {
		script = fmt.Sprintf(`set -e
mkdir -p %[1]s
%[2]scur=$(cat %[3]s 2>/dev/null || echo 0)
if [ "$cur" -gt %[4]d ]; then echo "$cur"; exit %[5]d; fi
if [ "$cur" -lt %[4]d ]; then printf '%%s\n' %[4]d > %[6]s; mv %[6]s %[3]s; fi
if [ "$(wc -c 2>/dev/null < %[7]s || echo 0)" -gt %[8]d ]; then tail -n %[9]d %[7]s > %[10]s; mv %[10]s %[7]s; fi
%[11]s`, targets.ShellQuote(m.Fence.Dir), lock, targets.ShellQuote(file), m.Fence.Token, errHostFenced, targets.ShellQuote(file+".tmp"),
			targets.ShellQuote(file+".log"), targets.HostLogMax, targets.HostLogKeep, targets.ShellQuote(file+".log.tmp"), record)
	}
	res, err := t.Run(ctx, script, nil)
	switch {
	case err != nil:
		return err
	case res.Exit == errHostFenced:
		return fmt.Errorf("a newer owner (token %s) applied to it, this replica has %d: %w",
			strings.TrimSpace(string(res.Stdout)), m.Fence.Token, targets.ErrHostFenced)
	case res.Exit != 0:
		return fmt.Errorf("exit %d: %s", res.Exit, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// hostWriteErr is the error of a host write: a request the host refused
// for its fencing token is a lost ownership (store.ErrFenced), an
// interruption, as the fence script's refusal is.
func hostWriteErr(err error) error {
	if errors.Is(err, targets.ErrHostFenced) && !errors.Is(err, store.ErrFenced) {
		return fmt.Errorf("%w: %w", err, store.ErrFenced)
	}
	return err
}
