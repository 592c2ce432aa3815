package reconciler

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/targets"
)

// published is the plan as it may leave the daemon in a report (a pull
// request comment, a notification): no observed state, and per change a
// summary without live host content (targets.Summary). The full diff is
// kept only where the operator opted in for the environment
// (Options.FullDiffs) and the resource is neither marked secret nor, on
// the host or as declared, unreadable to other users.
func (r *Reconciler) published(p *status.Plan, hosts []*hostRun) *status.Plan {
	full := slices.Contains(r.opts.FullDiffs, p.Environment)
	out := &status.Plan{Environment: p.Environment, Commit: p.Commit}
	for i, hp := range p.Hosts {
		pub := status.HostPlan{Host: hp.Host, Err: hp.Err}
		for _, c := range hp.Changes {
			res, ok := hosts[i].byID[c.ID]
			d := r.opts.Drivers[c.Kind]
			pc := targets.Change{ID: c.ID, Kind: c.Kind, Action: c.Action}
			switch {
			case c.Action == targets.NoChange || !ok || d == nil:
			case res.IsSecret():
				pc.Diff = r.secretDiff(res, c)
			case full && publicResource(res, c.Before):
				pc.Diff = c.Diff
			default:
				pc.Diff = targets.Summary(d, res, c, r.hashKey)
			}
			pub.Changes = append(pub.Changes, pc)
		}
		out.Hosts = append(out.Hosts, pub)
	}
	return out
}

// publicResource reports whether a resource's diff may be shown in full:
// not marked secret, and readable by everyone both on the host (observed
// mode) and as declared.
func publicResource(res config.Resource, before targets.State) bool {
	if m, ok := before.Fields["mode"]; (ok && !worldReadable(m)) || res.IsSecret() {
		return false
	}
	switch s := res.Spec.(type) {
	case *targets.FileSpec:
		return s.Mode == "" || worldReadable(s.Mode)
	case *targets.EnvSpec:
		return s.Mode == "" || worldReadable(s.Mode)
	}
	return true
}

// secretDiff is the diff of a secret resource wherever it goes (plan and
// apply output, logs, drift reports, history, the API and the status
// page, reports to Git hosts): that the secret changed, and of a body only
// its size, line count and keyed hash before and after (targets.Summary),
// never the content.
// It is idempotent: a diff it made already (planHost masks every secret
// change, and published masks again whatever reaches it) stays as it is.
func (r *Reconciler) secretDiff(res config.Resource, c targets.Change) string {
	const hidden = "secret changed (content hidden)"
	if res.Undecrypted {
		return undecryptedDiff
	}
	if strings.HasPrefix(c.Diff, hidden) {
		return c.Diff
	}
	d := r.opts.Drivers[c.Kind]
	if d == nil {
		return hidden
	}
	return hidden + "\n" + targets.Summary(d, res, c, r.hashKey)
}

// undecryptedDiff is the diff of a resource whose content a load did not
// decrypt (config.Resource.Undecrypted): a pull request's preview never
// decrypts, so that no template its author wrote ever sees a decrypted
// value (it could encode one into a size, a hash, an error or whether
// the file changes, all of which a preview publishes).
const undecryptedDiff = "secret: not evaluated (encrypted; a preview never decrypts)"

// worldReadable reads an octal mode and reports whether others may read.
func worldReadable(mode string) bool {
	v, err := strconv.ParseUint(mode, 8, 32)
	return err == nil && v&0o004 != 0
}

// LoadHashKey reads the key of preview content hashes from path, creating
// it (32 random bytes, mode 0600) the first time, so that hashes stay
// comparable across restarts without ever being guessable from outside.
func LoadHashKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails on Linux.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create preview hash key: %w", err)
		}
		_, err = f.Write(key)
		if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("write preview hash key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read preview hash key: %w", err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("read preview hash key %s: %d bytes, want at least 16", path, len(key))
	}
	return key, nil
}
