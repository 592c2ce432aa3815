package targets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultConfirmTimeout is how long a host waits for driftless to confirm a
// network change through a new connection before it puts the change back
// by itself. It is long enough for a slow SSH handshake and short enough
// that a host cut off by a bad firewall rule is not lost for long; it is
// the same as the daemon config's default ssh.confirm_timeout.
const DefaultConfirmTimeout = 60 * time.Second

// confirmer is a driver whose Apply is commit-confirmed.
type confirmer interface {
	withConfirmTimeout(d time.Duration) Driver
}

// WithConfirmTimeout returns a copy of ds in which every commit-confirmed
// driver (address, route, firewall) waits d for the confirmation; the
// daemon passes its ssh.confirm_timeout here. Other rows are kept as they
// are. A zero or negative d keeps DefaultConfirmTimeout.
func WithConfirmTimeout(ds map[string]Driver, d time.Duration) map[string]Driver {
	out := make(map[string]Driver, len(ds))
	for kind, drv := range ds {
		if c, ok := drv.(confirmer); ok && d > 0 {
			drv = c.withConfirmTimeout(d)
		}
		out[kind] = drv
	}
	return out
}

// Confirmed says whether d applies commit-confirmed (address, route,
// firewall). Such a change goes through the driver's Apply, which arms
// the revert and confirms it, never joined with others into one native
// call that would bypass both.
func Confirmed(d Driver) bool {
	_, ok := d.(confirmer)
	return ok
}

func (*AddressDriver) withConfirmTimeout(d time.Duration) Driver {
	return &AddressDriver{ConfirmTimeout: d}
}

func (*RouteDriver) withConfirmTimeout(d time.Duration) Driver {
	return &RouteDriver{ConfirmTimeout: d}
}

func (*FirewallDriver) withConfirmTimeout(d time.Duration) Driver {
	return &FirewallDriver{ConfirmTimeout: d}
}

// confirmDir is where armed reverts live on the host. /run is a tmpfs on
// every systemd host: a reboot forgets both the network change and its
// revert, which is right, since neither survives a reboot.
const confirmDir = "/run/driftless-confirm"

// ErrCutOff is wrapped by the error of ApplyConfirmed when the host could
// not be reached again after the change: the host reverts it by itself.
var ErrCutOff = errors.New("host cut off by the change")

// ApplyConfirmed applies a network change that could cut the host off,
// commit-confirmed:
//
//  1. Before anything changes, it arms a revert on the host itself: a
//     detached job (setsid nohup) that sleeps timeout, then runs restore, a
//     POSIX shell script that puts back the state saved before the change.
//     Through the agent when t has one (see onHost): the job is a process
//     of its own on the host, not the agent's, so a change that cuts the
//     agent's session off, or ends the agent, still gets reverted.
//  2. It runs apply.
//  3. It opens a NEW connection (t must be a Redialer to be confirmed that
//     way) and, through it, disarms the job.
//
// When the change does not finish, or the new connection cannot be opened,
// before the revert fires, the change is reported as failed with an error
// wrapping ErrCutOff, and the host is left to revert itself. When apply fails, the revert is run at
// once through the old connection (the timer still fires if that fails).
// A transport that is not a Redialer (the local machine, which cannot cut
// itself off) is confirmed through t itself.
//
// Arming and disarming are races decided on the host by one atomic rename
// of a token file, so a revert either runs completely or not at all.
func ApplyConfirmed(ctx context.Context, t Transport, timeout time.Duration, restore string, apply func(ctx context.Context) error) error {
	if timeout <= 0 {
		timeout = DefaultConfirmTimeout
	}
	token := randomHex(8)
	deadline := time.Now().Add(timeout)
	if err := armRevert(ctx, t, token, timeout, restore); err != nil {
		return fmt.Errorf("arm the revert before a network change: %w", err)
	}
	// The apply gets the confirm deadline: a change that cuts the current
	// connection leaves its command hanging, and past the deadline the host
	// reverts anyway.
	actx, cancel := context.WithDeadline(ctx, deadline)
	err := apply(actx)
	cancel()
	if err == nil {
		return confirm(ctx, t, token, timeout, deadline)
	}
	if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the change did not finish within the confirm timeout %s (%v): %w; the host reverts the change by itself", timeout, err, ErrCutOff)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if rerr := revertNow(rctx, t, token); rerr != nil {
		return fmt.Errorf("%w (reverting at once failed too: %v; %w: the host reverts the change by itself within %s)", err, rerr, ErrCutOff, timeout)
	}
	return fmt.Errorf("%w (reverted)", err)
}

// armRevert writes the restore script to the host (in the same script) and
// starts the detached job that runs it after timeout unless
// the token file is renamed away first.
func armRevert(ctx context.Context, t Transport, token string, timeout time.Duration, restore string) error {
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
	base := confirmDir + "/" + token
	// The job records its own pid: it leads its session and process group
	// (setsid), so killing the group ends its sleep too.
	job := "echo $$ > " + base + ".pid; sleep " + secs + "; if mv " + base + ".armed " + base + ".firing 2>/dev/null; then " +
		"sh " + base + ".sh > " + base + ".log 2>&1; echo $? > " + base + ".done; rm -f " + base + ".firing " + base + ".pid " + base + ".sh; fi"
	// The restore script travels in a here-document whose end marker is
	// random, so that no script can end it early, and the whole arm is one
	// script without stdin: the agent can run it.
	eof := "DRIFTLESS_REVERT_" + randomHex(8)
	script := "set -e\numask 077\nmkdir -p " + confirmDir + "\n" +
		"cat > " + base + ".sh <<'" + eof + "'\n" + restore + "\n" + eof + "\n" +
		": > " + base + ".armed\n" +
		"setsid nohup sh -c " + shq(job) + " </dev/null >/dev/null 2>&1 &\n" +
		"i=0; while [ ! -s " + base + ".pid ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done\n" +
		"[ -s " + base + ".pid ] || { echo 'the revert job did not start' >&2; exit 1; }\n"
	res, err := onHost(ctx, t, script)
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		return fmt.Errorf("exit %d: %s", res.Exit, trimOutput(res.Stderr))
	}
	return nil
}

// onHost runs a script of the arm or the immediate revert over t's
// current connection: through the host's agent when t has one (a
// CheckRunner: no SSH session is opened), else as a shell script. Either
// way the revert job it starts leaves the session at once (setsid nohup),
// so that cutting the session, or the agent's end, does not end the job.
func onHost(ctx context.Context, t Transport, script string) (Result, error) {
	if cr, ok := t.(CheckRunner); ok {
		return cr.RunCheck(ctx, script)
	}
	return t.Run(ctx, script, nil)
}

// disarmScript renames the token away (winning the race against the job,
// or learning that the revert already fired), then kills the sleeping job's
// process group and removes its files.
//
// Once confirmed, it also disarms every revert armed before this one that
// has not fired yet: those were left by changes that were cut off (and
// since rolled back through the still-open connection), and a new
// connection has just shown the host reachable in a newer state. Left
// armed, such a revert would fire later and silently put back a state older
// than the one driftless has since applied and confirmed. Reverts armed
// after this one belong to changes still in flight and are left alone.
func disarmScript(token string) string {
	base := confirmDir + "/" + token
	return "if mv " + base + ".armed " + base + ".cancelled 2>/dev/null; then\n" +
		"  for f in " + confirmDir + "/*.armed; do\n" +
		"    [ -e \"$f\" ] && [ \"$f\" -ot " + base + ".cancelled ] || continue\n" +
		"    b=${f%.armed}\n" +
		"    mv \"$f\" \"$b.cancelled\" 2>/dev/null || continue\n" +
		stopJob(`"$b"`) +
		"  done\n" +
		stopJob(base) +
		"  echo disarmed\n" +
		"else echo fired; fi\n"
}

// stopJob is the script lines that end the sleeping job of a revert whose
// token was renamed to b.cancelled, and remove its files.
func stopJob(b string) string {
	return "  pid=$(cat " + b + ".pid 2>/dev/null || true)\n" +
		"  if [ -n \"$pid\" ]; then kill -TERM -- \"-$pid\" 2>/dev/null || kill -TERM \"$pid\" 2>/dev/null || true; fi\n" +
		"  rm -f " + b + ".sh " + b + ".cancelled " + b + ".pid\n"
}

// revertNow disarms the job and runs the restore script at once, used when
// the apply itself failed and the connection still works.
func revertNow(ctx context.Context, t Transport, token string) error {
	base := confirmDir + "/" + token
	script := "if mv " + base + ".armed " + base + ".now 2>/dev/null; then\n" +
		"  pid=$(cat " + base + ".pid 2>/dev/null || true)\n" +
		"  if [ -n \"$pid\" ]; then kill -TERM -- \"-$pid\" 2>/dev/null || kill -TERM \"$pid\" 2>/dev/null || true; fi\n" +
		"  sh " + base + ".sh; s=$?\n" +
		"  rm -f " + base + ".sh " + base + ".now " + base + ".pid\n" +
		"  exit $s\n" +
		"fi\n"
	res, err := onHost(ctx, t, script)
	if err != nil {
		return fmt.Errorf("revert the failed network change: %w", err)
	}
	if res.Exit != 0 {
		return fmt.Errorf("revert the failed network change: exit %d: %s", res.Exit, trimOutput(res.Stderr))
	}
	return nil
}

// confirm opens a new connection before the deadline and disarms the
// revert through it.
func confirm(ctx context.Context, t Transport, token string, timeout time.Duration, deadline time.Time) error {
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	via := t
	if rd, ok := t.(Redialer); ok {
		nt, err := rd.Redial(cctx)
		if err != nil {
			return fmt.Errorf("confirm the network change: no new connection within %s: %w: %v; the host reverts the change by itself", timeout, ErrCutOff, err)
		}
		defer nt.Close()
		via = nt
	}
	res, err := via.Run(cctx, disarmScript(token), nil)
	if err != nil {
		return fmt.Errorf("confirm the network change: a command through the new connection failed: %w: %v; the host reverts the change by itself", ErrCutOff, err)
	}
	if res.Exit != 0 {
		return fmt.Errorf("confirm the network change: disarm exited %d: %s; the host reverts the change by itself", res.Exit, trimOutput(res.Stderr))
	}
	if strings.TrimSpace(string(res.Stdout)) != "disarmed" {
		return fmt.Errorf("confirm the network change: not confirmed within %s, the host already reverted it: %w", timeout, ErrCutOff)
	}
	return nil
}
