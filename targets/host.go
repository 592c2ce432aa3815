package targets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"github.com/driftless/driftless/config"
)

// NativeApplier is a transport that applies, restores and refreshes
// resources itself, in one process on the host with no shell script per
// resource: the driftless agent (package agent), over the SSH session it
// already holds, or in the daemon's own process for the local transport.
// A driver's Apply, Restore and Refresh go through it: a transport
// without it is refused.
type NativeApplier interface {
	// ApplyNative runs steps in order on the host, in one round trip, and
	// stops at the first failure. It returns how many steps are done. An
	// error of the connection itself leaves the outcome unknown: n is then
	// 0, and callers treat every step of the call as possibly done.
	ApplyNative(ctx context.Context, steps []Step) (int, error)
}

// The operations of a Step.
const (
	// StepApply makes the host match the resource (Driver.Apply), given
	// the state observed before.
	StepApply = "apply"
	// StepRestore puts back a snapshot (Driver.Restore).
	StepRestore = "restore"
	// StepRefresh reacts to a notify (Refresher.Refresh); State is unused.
	StepRefresh = "refresh"
)

// Step is one apply, restore or refresh of a NativeApplier call.
type Step struct {
	Op       string          `json:"op"`
	Resource config.Resource `json:"resource"`
	// State is the state observed before the apply, or the snapshot a
	// restore puts back.
	State State `json:"state"`
	// Archive is what an artifact's apply unpacks when its release is not
	// on the host yet: the archive as the daemon downloaded and checked
	// it, checked again on the host (its sha256 against the declared one,
	// and every entry) as it is unpacked. It is not part of the step's
	// JSON: the agent's protocol sends its bytes after the request line.
	Archive *io.SectionReader `json:"-"`
}

// NativeKind is a kind whose apply, restore and refresh run natively on
// the host: os calls, D-Bus, or one exec of the host's own tool without a
// shell. Its methods run where the resource lives (in the agent, or in the
// daemon's process for the local transport), after Host.Apply validated
// the resource with the kind's own Validate.
type NativeKind interface {
	ApplyNative(ctx context.Context, h *Host, r config.Resource, observed State) error
	RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error
}

// NativeRefresher is a NativeKind that reacts to a notify natively.
type NativeRefresher interface {
	RefreshNative(ctx context.Context, h *Host, r config.Resource) error
}

// Host is the host end of native applies: what a kind's native code needs
// of the host it runs on. The agent keeps one per session; the local
// transport makes one per call, with its root. Connections it opens (the
// system bus) are opened when a step first needs them and closed by Close.
type Host struct {
	root string

	mu sync.Mutex
	// bus is the systemd connection, opened by the first step that needs it.
	bus *systemd
	// closers are the connections opened so far, closed by Close.
	closers []func()
}

// NewHost returns the host end for paths under root ("" on a real host).
func NewHost(root string) *Host { return &Host{root: root} }

// Root is the folder every managed absolute path is placed under.
func (h *Host) Root() string { return h.root }

// Close closes the connections the host's steps opened.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.closers {
		c()
	}
	h.closers, h.bus = nil, nil
	return nil
}

// Apply runs the steps in order and stops at the first failure, and
// returns how many steps are done. Each step's resource is validated with
// its kind's own Validate just before it runs, and an invalid one (or one
// whose kind has no native apply) is refused, touching nothing of it: the
// steps before it, valid, are done, so that the caller blames the right
// step and a rollback still restores every valid snapshot. The agent runs
// it on what the daemon sends: the host trusts no resource it has not
// validated itself. With a fence in ctx (WithHostFence), the whole
// request is refused when the host saw a higher token, and the host's
// fence lock is held while the steps run.
func (h *Host) Apply(ctx context.Context, steps []Step) (int, error) {
	ctx, release, err := holdHostFence(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	ds := Drivers()
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return i, fmt.Errorf("%s %s: %w", s.Op, s.Resource.ID(), err)
		}
		nk, err := nativeKind(ds, s)
		if err != nil {
			return i, fmt.Errorf("refused step %d, nothing of it applied: %w", i+1, err)
		}
		switch {
		case s.Archive != nil:
			err = nk.(archiveApplier).applyArchive(ctx, h, s.Resource, s.State, s.Archive)
		case s.Op == StepApply:
			err = nk.ApplyNative(ctx, h, s.Resource, s.State)
		case s.Op == StepRestore:
			err = nk.RestoreNative(ctx, h, s.Resource, s.State)
		case s.Op == StepRefresh:
			err = nk.(NativeRefresher).RefreshNative(ctx, h, s.Resource)
		}
		if err != nil {
			return i, err
		}
	}
	return len(steps), nil
}

// nativeKind checks one step: a known operation on a valid resource of a
// kind with a native apply.
func nativeKind(ds map[string]Driver, s Step) (NativeKind, error) {
	r := s.Resource
	d, ok := ds[r.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown resource kind %q", r.Kind)
	}
	// The resource is validated first, whatever the step: an invalid
	// one is refused as such.
	if r.Spec == nil {
		return nil, fmt.Errorf("%s: no spec", r.ID())
	}
	if err := config.Problems(d.Validate(r.Name, r.Spec)); err != nil {
		return nil, fmt.Errorf("%s: invalid: %w", r.ID(), err)
	}
	nk, ok := d.(NativeKind)
	if !ok {
		return nil, fmt.Errorf("kind %q has no native apply", r.Kind)
	}
	switch s.Op {
	case StepApply, StepRestore:
	case StepRefresh:
		if _, ok := d.(NativeRefresher); !ok {
			return nil, fmt.Errorf("kind %q has no refresh", r.Kind)
		}
	default:
		return nil, fmt.Errorf("%s: unknown operation %q", r.ID(), s.Op)
	}
	if s.Archive != nil {
		if _, ok := d.(archiveApplier); !ok || s.Op != StepApply {
			return nil, fmt.Errorf("%s: the %s step carries an archive, which only an artifact's apply takes", r.ID(), s.Op)
		}
	}
	return nk, nil
}

// archiveApplier is a NativeKind whose apply may take an archive the
// daemon fetched (Step.Archive): the artifact kind.
type archiveApplier interface {
	applyArchive(ctx context.Context, h *Host, r config.Resource, observed State, archive *io.SectionReader) error
}

// Joinable says whether a change of d's kind may go to the host in one
// NativeApplier call with others: a native kind that is not
// commit-confirmed (its Apply arms and confirms a revert) and whose apply
// needs nothing the daemon fetches first (an artifact's Apply downloads
// its archive and sends it with its step).
func Joinable(d Driver) bool {
	_, fetches := d.(archiveApplier)
	return Native(d) && !Confirmed(d) && !fetches
}

// Native says whether d's kind applies natively through a NativeApplier
// (a NativeKind): the one test of it, over the caller's driver table.
func Native(d Driver) bool {
	_, ok := d.(NativeKind)
	return ok
}

// stepJSON is a Step as it travels: the spec kept raw until the kind,
// and so the spec's type, is known.
type stepJSON struct {
	Op       string       `json:"op"`
	Resource ResourceJSON `json:"resource"`
	State    State        `json:"state"`
}

// UnmarshalJSON decodes a step, its spec into its kind's spec type; a
// spec field the kind does not know is refused.
func (s *Step) UnmarshalJSON(b []byte) error {
	var j stepJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	r, err := j.Resource.Resource(true)
	if err != nil {
		return err
	}
	*s = Step{Op: j.Op, Resource: r, State: j.State}
	return nil
}

// ResourceJSON is a config.Resource as JSON with its spec kept raw until
// its kind, and so the spec's type, is known: the one decoder of a
// resource carried as JSON (an agent's step, a journal entry), so that
// drivers get back the spec types the loader gives them.
type ResourceJSON struct {
	Kind     string           `json:"kind"`
	Name     string           `json:"name"`
	Spec     json.RawMessage  `json:"spec,omitempty"`
	Requires []string         `json:"requires,omitempty"`
	Notify   []string         `json:"notify,omitempty"`
	Drift    config.DriftMode `json:"drift,omitempty"`
}

// NewResourceJSON encodes r, its spec as JSON.
func NewResourceJSON(r config.Resource) (ResourceJSON, error) {
	spec, err := json.Marshal(r.Spec)
	if err != nil {
		return ResourceJSON{}, fmt.Errorf("encode the spec of %s: %w", r.ID(), err)
	}
	return ResourceJSON{Kind: r.Kind, Name: r.Name, Spec: spec, Requires: r.Requires, Notify: r.Notify, Drift: r.Drift}, nil
}

// Resource decodes j back into a config.Resource, its spec into its
// kind's spec type (none for a kind this table does not know); strict
// refuses a spec field the kind does not know.
func (j ResourceJSON) Resource(strict bool) (config.Resource, error) {
	r := config.Resource{Kind: j.Kind, Name: j.Name, Requires: j.Requires, Notify: j.Notify, Drift: j.Drift}
	k, ok := Kinds()[r.Kind]
	if !ok || len(j.Spec) == 0 || string(j.Spec) == "null" {
		return r, nil
	}
	spec := k.NewSpec()
	dec := json.NewDecoder(bytes.NewReader(j.Spec))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(spec); err != nil {
		return r, fmt.Errorf("decode the spec of %s: %w", r.ID(), err)
	}
	r.Spec = spec
	return r, nil
}

// writeOne writes w on the host in process, as the local transport's
// WriteFiles does (temporary file, mode and owner, sync, rename).
func (h *Host) writeOne(ctx context.Context, r config.Resource, w FileWrite) error {
	if _, err := NewLocal(h.root).WriteFiles(ctx, []FileWrite{w}); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// exec runs a program of the host without a shell (its arguments are
// never parsed by one) and turns a non-zero exit into an error carrying
// its stderr, saying what was being done.
func (h *Host) exec(ctx context.Context, what, name string, args ...string) error {
	return h.execEnv(ctx, what, nil, name, args...)
}

// execEnv is exec with variables added to the environment.
func (h *Host) execEnv(ctx context.Context, what string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s: %s: exit %d: %s", what, name, ee.ExitCode(), trimOutput(stderr.Bytes()))
		}
		return fmt.Errorf("%s: %s: %w", what, name, err)
	}
	return nil
}
