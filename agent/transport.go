package agent

import (
	"context"
	"errors"
	"io/fs"

	"github.com/driftless/driftless/targets"
)

// Transport is a host's SSH transport whose observations, file writes,
// checks and the applies of native kinds go to the host's agent; the
// other kinds' scripts still run through the transport.
type Transport struct {
	Starter
	Agent *Remote
}

var (
	_ targets.NativeObserver = (*Transport)(nil)
	_ targets.Redialer       = (*Transport)(nil)
	_ targets.CheckRunner    = (*Transport)(nil)
	_ targets.NativeApplier  = (*Transport)(nil)
	_ targets.HostFencer     = (*Transport)(nil)
)

// MarkHostFence implements targets.HostFencer: the agent records the
// fence event, no SSH session is opened for it.
func (t *Transport) MarkHostFence(ctx context.Context, m targets.FenceMark) error {
	return t.Agent.MarkFence(ctx, t.Starter, m)
}

// ApplyNative implements targets.NativeApplier: the agent applies the
// steps, no SSH session is opened for them.
func (t *Transport) ApplyNative(ctx context.Context, steps []targets.Step) (int, error) {
	return t.Agent.Apply(ctx, t.Starter, steps)
}

// RunCheck implements targets.CheckRunner: the agent runs the check, no
// SSH session is opened for it.
func (t *Transport) RunCheck(ctx context.Context, script string) (targets.Result, error) {
	return t.Agent.RunCheck(ctx, t.Starter, script)
}

// ObserveNative implements targets.NativeObserver.
func (t *Transport) ObserveNative(ctx context.Context, qs []targets.Query) ([]targets.Answer, error) {
	return t.Agent.Observe(ctx, t.Starter, qs)
}

// WriteFiles implements targets.Transport with the agent's in-process
// writes: no process started on the host per file.
func (t *Transport) WriteFiles(ctx context.Context, files []targets.FileWrite) (int, error) {
	return t.Agent.WriteFiles(ctx, t.Starter, files)
}

// WriteFile implements targets.Transport as a WriteFiles of one file.
func (t *Transport) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	_, err := t.WriteFiles(ctx, []targets.FileWrite{{Path: path, Data: data, Mode: mode}})
	return err
}

// Redial opens a fresh connection for confirming a network change; it is
// used for scripts only, without an agent.
func (t *Transport) Redial(ctx context.Context) (targets.Transport, error) {
	rd, ok := t.Starter.(targets.Redialer)
	if !ok {
		return nil, errors.New("redial: the transport cannot open a second connection")
	}
	return rd.Redial(ctx)
}
