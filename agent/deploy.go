package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
)

// Starter is a transport that can start a long-lived program on its host:
// the SSH transport.
type Starter interface {
	targets.Transport
	Start(ctx context.Context, script string) (*ssh.Stream, error)
}

// Deployer puts the agent on hosts and starts it. One serves every host of
// a daemon; it hashes each binary once.
type Deployer struct {
	// Own is the binary of the running daemon, for hosts of its own
	// architecture (linux/GOARCH).
	Own string
	// Dir holds binaries for hosts of other architectures, named
	// driftless-linux-ARCH (ARCH as Go names it: amd64, arm64). A binary
	// there for the daemon's own architecture is not used: Own is.
	Dir string

	mu   sync.Mutex
	sums map[string]string
}

// The lines the start script prints before the agent's own output.
const (
	markStart   = "driftless-agent-start"
	markMissing = "driftless-agent-missing"
)

// goArch maps `uname -m` to Go's architecture names.
var goArch = map[string]string{
	"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm",
	"i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}

// binary returns the agent binary for a host architecture and its SHA-256.
func (d *Deployer) binary(arch string) (string, string, error) {
	path := d.Own
	if arch != runtime.GOARCH {
		if d.Dir == "" {
			return "", "", fmt.Errorf("the host is linux/%s and this daemon linux/%s: set agent.binaries to a folder holding driftless-linux-%s", arch, runtime.GOARCH, arch)
		}
		path = filepath.Join(d.Dir, "driftless-linux-"+arch)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if sum, ok := d.sums[path]; ok {
		return path, sum, nil
	}
	if _, err := os.Stat(path); err != nil {
		return "", "", fmt.Errorf("no agent binary for linux/%s: %w", arch, err)
	}
	sum, err := fileSum(path)
	if err != nil {
		return "", "", err
	}
	if d.sums == nil {
		d.sums = map[string]string{}
	}
	d.sums[path] = sum
	return path, sum, nil
}

// Start starts the agent on t's host, copying the binary there first when
// the host lacks it, and checks that the agent is the binary it meant to
// start. The binary lives in /var/lib/driftless/agent/SHA256 for root, in
// the user's cache folder (driftless/agent/SHA256) otherwise, and its hash
// is checked on the host before every start.
func (d *Deployer) Start(ctx context.Context, t Starter) (*Client, error) {
	res, err := t.Run(ctx, `uname -m; id -u; printf '%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}"`, nil)
	if err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	f := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	if res.Exit != 0 || len(f) != 3 {
		return nil, fmt.Errorf("start agent: host facts: exit %d: %q", res.Exit, res.Stdout)
	}
	arch, ok := goArch[f[0]]
	if !ok {
		return nil, fmt.Errorf("start agent: no agent for machine %q", f[0])
	}
	path, sum, err := d.binary(arch)
	if err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	dir := "/var/lib/driftless/agent"
	if f[1] != "0" {
		dir = f[2] + "/driftless/agent"
	}
	c, err := d.start(ctx, t, dir, sum)
	if !errors.Is(err, errMissing) {
		return c, err
	}
	if err := d.copy(ctx, t, path, dir, sum); err != nil {
		return nil, err
	}
	return d.start(ctx, t, dir, sum)
}

var errMissing = errors.New("agent binary missing on the host")

// start runs the agent binary dir/sum when it hashes to sum.
func (d *Deployer) start(ctx context.Context, t Starter, dir, sum string) (*Client, error) {
	p := targets.ShellQuote(dir + "/" + sum)
	script := "if [ -f " + p + " ] && [ \"$(sha256sum < " + p + " 2>/dev/null)\" = '" + sum + "  -' ]; then echo " + markStart +
		"; exec " + p + " agent; fi\necho " + markMissing
	s, err := t.Start(ctx, script)
	if err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	r := bufio.NewReaderSize(s.Stdout, 64<<10)
	type first struct {
		line string
		err  error
	}
	got := make(chan first, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			line = strings.TrimSpace(line)
			if err != nil || line == markStart || line == markMissing {
				got <- first{line, err}
				return
			}
		}
	}()
	var fl first
	select {
	case fl = <-got:
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("start agent: %w", ctx.Err())
	}
	switch {
	case fl.err != nil:
		s.Close()
		return nil, fmt.Errorf("start agent: %w", fl.err)
	case fl.line == markMissing:
		s.Close()
		return nil, errMissing
	}
	c, err := NewClient(ctx, s.Stdin, r, s)
	if err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	if c.Hello().Sum != sum {
		c.Close()
		return nil, fmt.Errorf("start agent: the agent's binary hashes to %s, want %s", c.Hello().Sum, sum)
	}
	return c, nil
}

// copy puts the binary at dir/sum on the host: written beside, checked
// against its hash, then renamed in place, so a cut transfer leaves
// nothing that could start.
func (d *Deployer) copy(ctx context.Context, t Starter, path, dir, sum string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("copy agent: %w", err)
	}
	q := targets.ShellQuote(dir)
	script := "umask 077 && mkdir -p " + q + " && tmp=$(mktemp " + targets.ShellQuote(dir+"/."+sum+".XXXXXX") + ") || exit 1\n" +
		"if head -c " + strconv.Itoa(len(data)) + " > \"$tmp\" && [ \"$(sha256sum < \"$tmp\")\" = '" + sum + "  -' ] && chmod 0700 \"$tmp\" && mv -f \"$tmp\" " +
		targets.ShellQuote(dir+"/"+sum) + "; then exit 0; fi\nrm -f \"$tmp\"; echo 'the copied agent does not hash to " + sum + "' >&2; exit 1"
	res, err := t.Run(ctx, script, data)
	if err != nil {
		return fmt.Errorf("copy agent (%d bytes): %w", len(data), err)
	}
	if res.Exit != 0 {
		return fmt.Errorf("copy agent (%d bytes) to %s: exit %d: %s", len(data), dir, res.Exit, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// Remote is the agent of one host: started on first use, kept across
// passes, started again when its session ended (the connection dropped,
// the agent died).
type Remote struct {
	d      *Deployer
	mu     sync.Mutex
	client *Client
	// conn is the connection the client's session runs on, when the
	// Starter tells it (connected).
	conn   any
	starts int
}

// NewRemote returns the agent of one host, not yet started.
func NewRemote(d *Deployer) *Remote { return &Remote{d: d} }

// Starts counts the agents started so far.
func (r *Remote) Starts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts
}

// Observe observes qs with the host's agent, starting it when needed. An
// agent whose session ended is started again and asked once more:
// observing changes nothing, so asking twice is safe.
func (r *Remote) Observe(ctx context.Context, t Starter, qs []targets.Query) ([]targets.Answer, error) {
	defer hold(t)()
	for try := 0; ; try++ {
		c, err := r.get(ctx, t)
		if err != nil {
			return nil, err
		}
		a, err := c.Observe(ctx, qs)
		if try == 0 && errors.Is(err, ErrGone) && ctx.Err() == nil {
			continue
		}
		return a, err
	}
}

// WriteFiles writes files with the host's agent, starting it when needed.
// A write is not asked twice: when the session ends in the middle, the
// error says so and the caller treats the files as possibly written.
func (r *Remote) WriteFiles(ctx context.Context, t Starter, files []targets.FileWrite) (int, error) {
	defer hold(t)()
	c, err := r.get(ctx, t)
	if err != nil {
		return 0, err
	}
	return c.WriteFiles(ctx, files)
}

// Apply applies steps with the host's agent, starting it when needed. An
// apply is not asked twice: when the session ends in the middle, the
// error says so and the caller treats the steps as possibly done.
func (r *Remote) Apply(ctx context.Context, t Starter, steps []targets.Step) (int, error) {
	defer hold(t)()
	c, err := r.get(ctx, t)
	if err != nil {
		return 0, err
	}
	return c.Apply(ctx, steps)
}

// MarkFence records a fence event with the host's agent, starting it
// when needed. It is not asked twice: a begin recorded twice would read
// as two intervals of writes.
func (r *Remote) MarkFence(ctx context.Context, t Starter, m targets.FenceMark) error {
	defer hold(t)()
	c, err := r.get(ctx, t)
	if err != nil {
		return err
	}
	return c.MarkFence(ctx, m)
}

// RunCheck runs a command check with the host's agent, starting it when
// needed. A check is not asked twice (it may have effects).
func (r *Remote) RunCheck(ctx context.Context, t Starter, script string) (targets.Result, error) {
	defer hold(t)()
	c, err := r.get(ctx, t)
	if err != nil {
		return targets.Result{}, err
	}
	return c.RunCheck(ctx, script)
}

// connected is a Starter that tells its live connection (the SSH
// transport): an agent session lives on one connection and ends with it.
// Hold keeps the connection from being closed while a request is out.
type connected interface {
	Connection() any
	Hold() (release func())
}

// hold keeps t's connection open until the returned func is called, when
// t can tell (connected).
func hold(t Starter) func() {
	if cn, ok := t.(connected); ok {
		return cn.Hold()
	}
	return func() {}
}

func (r *Remote) get(ctx context.Context, t Starter) (*Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	same := true
	if cn, ok := t.(connected); ok {
		// The connection the agent was started on was closed (dropped,
		// or closed by the pool while idle): the session went with it,
		// though nothing told the client yet. A request sent there
		// would fail after it may have reached nothing.
		cur := cn.Connection()
		same = cur != nil && cur == r.conn
	}
	if r.client != nil && !r.client.Gone() && same {
		return r.client, nil
	}
	if r.client != nil {
		r.client.Close()
	}
	c, err := r.d.Start(ctx, t)
	if err != nil {
		return nil, err
	}
	r.client, r.starts = c, r.starts+1
	if cn, ok := t.(connected); ok {
		r.conn = cn.Connection()
	}
	return c, nil
}

// Close ends the agent's session.
func (r *Remote) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		return nil
	}
	return r.client.Close()
}
