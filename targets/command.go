package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"unicode"

	"github.com/driftless/driftless/config"
)

// CommandDriver runs a command when its guards say it is needed: not when
// the Creates path exists, not when the Unless command exits 0. A command
// without any guard is needed on every pass, like an exec without guards in
// other tools; declare a guard to make it converge.
//
// The command, its Unless guard and its Undo run with DRIFTLESS_ROOT set to
// the transport's root and in Dir (under the root) when given; Creates is a
// path under the root.
//
// Restore runs Undo when it is set and the command had been needed (so
// Apply ran it); without Undo, Restore does nothing, because what an
// arbitrary command did cannot be known, let alone reversed.
type CommandDriver struct{}

var (
	_ Driver       = (*CommandDriver)(nil)
	_ DeclaredDiff = (*CommandDriver)(nil)
	_ NativeKind   = (*CommandDriver)(nil)
)

// DiffIsDeclared implements DeclaredDiff: a command's diff is what the
// revision declares to run, and why.
func (*CommandDriver) DiffIsDeclared() {}

// unevaluated is the value of the "unless" field when the guard was not
// run because the revision is not trusted.
const unevaluated = "unevaluated"

// Kind returns "command".
func (*CommandDriver) Kind() string { return "command" }

// CommandSpec runs a command, guarded: not when Creates exists, not when
// Unless exits 0. The name is a label.
type CommandSpec struct {
	Run     string `yaml:"run" json:"run"`
	Creates string `yaml:"creates" json:"creates,omitempty"`
	Unless  string `yaml:"unless" json:"unless,omitempty"`
	Undo    string `yaml:"undo" json:"undo,omitempty"`
	Dir     string `yaml:"dir" json:"dir,omitempty"`
}

// NewSpec returns an empty command spec.
func (*CommandDriver) NewSpec() any { return &CommandSpec{} }

// Validate is the command kind's one validation.
func (*CommandDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateCommand)
}

func validateCommand(name string, s *CommandSpec) []config.Problem {
	var p problems
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		p.add("", "command: %q holds a control character (a newline, a tab), which would forge lines in plans and logs", name)
	}
	p.required("command", "run", s.Run)
	if s.Creates != "" {
		p.path("creates", "creates path", s.Creates)
	}
	if s.Dir != "" {
		p.path("dir", "dir path", s.Dir)
	}
	return p
}

// commandPrefix is the part of a script that sets DRIFTLESS_ROOT and
// enters Dir before a declared command runs.
func commandPrefix(root, dir string) (string, error) {
	s := "DRIFTLESS_ROOT=" + shq(root) + "; export DRIFTLESS_ROOT; "
	if dir == "" {
		return s, nil
	}
	p, err := hostPath(root, dir)
	if err != nil {
		return "", fmt.Errorf("dir: %w", err)
	}
	return s + "cd -- " + shq(p) + " && ", nil
}

// Parse reads the guards' observation (observeNative): "creates=yes|no"
// and "unless=<exit status>" lines for those that are declared. The state
// is Present when a guard says the command's effect is already there.
func (*CommandDriver) Parse(_ config.Resource, out []byte) (State, error) {
	st := State{Fields: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || (k != "creates" && k != "unless") {
			return State{}, fmt.Errorf("unexpected command observation %q", line)
		}
		st.Fields[k] = v
	}
	st.Present = st.Fields["creates"] == "yes" || st.Fields["unless"] == "0"
	return st, nil
}

var _ previewQueried = (*CommandDriver)(nil)

// query describes a command's guards for native observation: the path
// Creates names, and the Unless guard as a shell runs it (its folder and
// DRIFTLESS_ROOT set).
func (*CommandDriver) query(r config.Resource, root string) (Query, error) {
	return commandQuery(r, root, true)
}

// previewQuery is query for a revision that is not trusted: the Unless
// guard is not sent, only marked unevaluated.
func (*CommandDriver) previewQuery(r config.Resource, root string) (Query, error) {
	return commandQuery(r, root, false)
}

func commandQuery(r config.Resource, root string, runUnless bool) (Query, error) {
	q := Query{Kind: r.Kind}
	spec, err := specOf(r, validateCommand)
	if err != nil {
		return q, err
	}
	if spec.Creates != "" {
		if q.Path, err = hostPath(root, spec.Creates); err != nil {
			return q, fmt.Errorf("creates: %w", err)
		}
	}
	switch {
	case spec.Unless != "" && !runUnless:
		q.Unevaluated = true
	case spec.Unless != "":
		prefix, err := commandPrefix(root, spec.Dir)
		if err != nil {
			return q, err
		}
		q.Guard = prefix + "sh -c " + shq(spec.Unless)
	}
	return q, nil
}

// observeNative prints "creates=yes|no" when Creates is declared, and the
// Unless guard's exit status (or "unevaluated") when it is. The guard runs
// in a shell of its own with no input and its output discarded.
func (*CommandDriver) observeNative(o *observation, q Query) ([]byte, error) {
	var b bytes.Buffer
	if q.Path != "" {
		if _, err := os.Lstat(q.Path); err == nil {
			b.WriteString("creates=yes\n")
		} else {
			b.WriteString("creates=no\n")
		}
	}
	switch {
	case q.Unevaluated:
		b.WriteString("unless=" + unevaluated + "\n")
	case q.Guard != "":
		cmd := exec.CommandContext(o.ctx, "sh", "-c", q.Guard)
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			b.WriteString("unless=0\n")
		case errors.As(err, &ee):
			code := ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			fmt.Fprintf(&b, "unless=%d\n", code)
		default:
			return nil, fmt.Errorf("run the unless guard: %w", err)
		}
		if err := o.ctx.Err(); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// Diff says Create when the command must run, with the reason.
func (*CommandDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: r.Kind, Before: observed, Action: NoChange}
	spec, err := specOf(r, validateCommand)
	if err != nil {
		c.Action, c.Diff = Update, err.Error()
		return c
	}
	if observed.Present {
		return c
	}
	var why []string
	if spec.Creates != "" {
		why = append(why, spec.Creates+" does not exist")
	}
	switch u := observed.Fields["unless"]; {
	case spec.Unless == "":
	case u == unevaluated:
		why = append(why, "would run (not evaluated in a preview): unless is never run for a revision not yet merged")
	default:
		why = append(why, "unless exited "+u)
	}
	if len(why) == 0 {
		why = append(why, "no guard")
	}
	c.Action = Create
	c.Diff = "run: " + spec.Run + "\nbecause: " + strings.Join(why, ", ")
	return c
}

// Apply runs the command, natively (ApplyNative); a non-zero exit is an
// error carrying its stderr.
func (*CommandDriver) Apply(ctx context.Context, t Transport, r config.Resource, _ State) error {
	spec, err := specOf(r, validateCommand)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if strings.TrimSpace(spec.Run) == "" {
		return fmt.Errorf("run %s: no command to run", r.ID())
	}
	return onlyNative(ctx, t, StepApply, r, State{})
}

// Restore runs Undo when it is set and the snapshot shows the command was
// needed, natively (RestoreNative); otherwise it does nothing.
func (*CommandDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	spec, err := specOf(r, validateCommand)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if spec.Undo == "" || snapshot.Present {
		return nil
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// ApplyNative runs the command on the host: the declared command is a
// shell command by design, run with sh -c in its own process group (as
// the agent runs a check), with no SSH session for it.
func (*CommandDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, _ State) error {
	spec, err := specOf(r, validateCommand)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if strings.TrimSpace(spec.Run) == "" {
		return fmt.Errorf("run %s: no command to run", r.ID())
	}
	return runDeclaredNative(ctx, h, r, spec.Dir, spec.Run, "run")
}

// RestoreNative is Restore on the host.
func (*CommandDriver) RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	spec, err := specOf(r, validateCommand)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if spec.Undo == "" || snapshot.Present {
		return nil
	}
	return runDeclaredNative(ctx, h, r, spec.Dir, spec.Undo, "undo")
}

// runDeclaredNative runs a declared command (the run or the undo) on the
// host, with DRIFTLESS_ROOT set and in Dir: the shell that enters Dir
// execs sh -c, so one process runs the command.
func runDeclaredNative(ctx context.Context, h *Host, r config.Resource, dir, script, what string) error {
	prefix, err := commandPrefix(h.Root(), dir)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, r.ID(), err)
	}
	return runScript(ctx, NewLocal(h.Root()), what+" "+r.ID(), prefix+"exec sh -c "+shq(script)+" </dev/null")
}
