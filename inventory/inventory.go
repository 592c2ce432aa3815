// Package inventory reads an environment's hosts from an inventory: a
// command printing JSON in the shape of Ansible's dynamic inventory scripts,
// or an HTTP endpoint answering the same. A Source runs it (trusted
// revisions) or only reads its last result (untrusted ones: a pull request
// preview, a plan), so that nothing an unmerged revision declares runs.
package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/redact"
	"github.com/driftless/driftless/targets"
)

// MaxBytes bounds an inventory's JSON.
const MaxBytes = 16 << 20

// DefaultTimeout bounds one run of an inventory command or request.
const DefaultTimeout = time.Minute

// ErrNoResult says that an untrusted load found no earlier result to use.
var ErrNoResult = errors.New("no inventory result yet")

// Source implements config.InventorySource.
type Source struct {
	// Dir keeps the last result of each environment's inventory.
	Dir string
	// Run is true for trusted revisions: the inventory is run (and its
	// result kept); false, only the last result is read.
	Run bool
	// HTTPClient fetches url inventories (nil: a default client).
	HTTPClient *http.Client
	// Timeout bounds one run (0: DefaultTimeout).
	Timeout time.Duration
	Logger  zerolog.Logger
}

var _ config.InventorySource = (*Source)(nil)

// Hosts returns env's hosts from its inventory. A run that fails falls
// back to the last result, logged; with none, it is an error.
func (s *Source) Hosts(env string, inv *config.Inventory) ([]config.InventoryHost, error) {
	if !s.Run {
		hosts, err := s.last(env)
		if err != nil {
			return nil, fmt.Errorf("inventory of %s: %w (an untrusted revision never runs the inventory)", env, err)
		}
		return hosts, nil
	}
	body, err := s.fetch(env, inv)
	var hosts []config.InventoryHost
	if err == nil {
		hosts, err = Parse(body)
	}
	if err != nil {
		last, lerr := s.last(env)
		if lerr != nil {
			return nil, fmt.Errorf("inventory of %s: %w", env, err)
		}
		s.Logger.Warn().Str("environment", env).Err(err).Msg("inventory failed; using its last result")
		return last, nil
	}
	if err := s.keep(env, body); err != nil {
		s.Logger.Warn().Str("environment", env).Err(err).Msg("cannot keep inventory result")
	}
	return hosts, nil
}

func (s *Source) fetch(env string, inv *config.Inventory) ([]byte, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if inv.URL != "" {
		client := s.HTTPClient
		if client == nil {
			client = &http.Client{}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, inv.URL, nil)
		if err != nil {
			return nil, fmt.Errorf("inventory %s: %w", redact.URL(inv.URL), err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("inventory: %s", redact.URL(err.Error()))
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("inventory %s: status %d", redact.URL(inv.URL), resp.StatusCode)
		}
		return readBounded(resp.Body)
	}
	out, err := runCommand(ctx, inv.Command, map[string]string{"DRIFTLESS_ENVIRONMENT": env}, nil)
	if err != nil {
		return nil, fmt.Errorf("inventory command: %w", err)
	}
	return out, nil
}

// runCommand runs command with sh -c on the daemon's machine, with vars
// exported and stdin on its input, and returns what it printed (at most
// MaxBytes); an exit other than 0 is an error with the end of its stderr.
// Inventory commands and provisioners both run through it. Its errors do
// not quote the command (it may hold credentials); callers say which.
func runCommand(ctx context.Context, command string, vars map[string]string, stdin []byte) ([]byte, error) {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	var script strings.Builder
	for _, k := range names {
		fmt.Fprintf(&script, "%s=%s; export %s\n", k, targets.ShellQuote(vars[k]), k)
	}
	script.WriteString(command + "\n")
	local := targets.NewLocal("")
	defer local.Close()
	res, err := local.Run(ctx, script.String(), stdin)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if res.Exit != 0 {
		return nil, fmt.Errorf("exited %d: %s", res.Exit, strings.TrimSpace(string(tailBytes(res.Stderr, 500))))
	}
	if len(res.Stdout) > MaxBytes {
		return nil, fmt.Errorf("printed over %d bytes", MaxBytes)
	}
	return res.Stdout, nil
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("inventory over %d bytes", MaxBytes)
	}
	return b, nil
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (s *Source) file(env string) string { return filepath.Join(s.Dir, env+".json") }

// keep writes the result beside, then renames it into place.
func (s *Source) keep(env string, body []byte) error {
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return fmt.Errorf("keep inventory: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, "."+env+"-*.json")
	if err != nil {
		return fmt.Errorf("keep inventory: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("keep inventory: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keep inventory: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.file(env)); err != nil {
		return fmt.Errorf("keep inventory: %w", err)
	}
	return nil
}

func (s *Source) last(env string) ([]config.InventoryHost, error) {
	b, err := os.ReadFile(s.file(env))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoResult
	}
	if err != nil {
		return nil, fmt.Errorf("read the last inventory result: %w", err)
	}
	return Parse(b)
}

// group is one group of an Ansible inventory.
type group struct {
	Hosts    []string       `json:"hosts"`
	Vars     map[string]any `json:"vars"`
	Children []string       `json:"children"`
}

// Parse reads Ansible's dynamic inventory JSON: groups (each with hosts,
// vars and children) and _meta.hostvars. A host's roles are the groups
// it is in, directly or through a child group (but "all" and
// "ungrouped"); its vars are its groups' vars under its own hostvars.
// ansible_host, ansible_user, ansible_port and ansible_connection (local)
// give its address, user, port and transport.
func Parse(b []byte) ([]config.InventoryHost, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse inventory JSON: %w", err)
	}
	var meta struct {
		HostVars map[string]map[string]any `json:"hostvars"`
	}
	if m, ok := raw["_meta"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, fmt.Errorf("parse inventory _meta: %w", err)
		}
	}
	groups := map[string]group{}
	for name, v := range raw {
		if name == "_meta" {
			continue
		}
		var g group
		// A group may also be a bare list of hosts.
		if err := json.Unmarshal(v, &g); err != nil {
			if err := json.Unmarshal(v, &g.Hosts); err != nil {
				return nil, fmt.Errorf("parse inventory group %q: not a group or a list of hosts", name)
			}
		}
		groups[name] = g
	}
	type acc struct {
		roles map[string]bool
		vars  map[string]any
	}
	hosts := map[string]*acc{}
	for h := range meta.HostVars {
		hosts[h] = &acc{roles: map[string]bool{}, vars: map[string]any{}}
	}
	// Walk each group down its children, depth first, without loops.
	var walk func(name string, top string, seen map[string]bool)
	walk = func(name, top string, seen map[string]bool) {
		if seen[name] {
			return
		}
		seen[name] = true
		g := groups[name]
		for _, h := range g.Hosts {
			a := hosts[h]
			if a == nil {
				a = &acc{roles: map[string]bool{}, vars: map[string]any{}}
				hosts[h] = a
			}
			if top != "all" && top != "ungrouped" {
				a.roles[top] = true
			}
			for k, v := range groups[top].Vars {
				if _, set := a.vars[k]; !set {
					a.vars[k] = v
				}
			}
		}
		for _, c := range g.Children {
			walk(c, top, seen)
		}
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		walk(n, n, map[string]bool{})
	}
	out := make([]config.InventoryHost, 0, len(hosts))
	for name, a := range hosts {
		vars := a.vars
		for k, v := range meta.HostVars[name] {
			vars[k] = v
		}
		h := config.InventoryHost{Name: name, Vars: map[string]any{}}
		for k, v := range vars {
			switch k {
			case "ansible_host":
				h.Address = fmt.Sprint(v)
			case "ansible_user":
				h.User = fmt.Sprint(v)
			case "ansible_port":
				p, err := strconv.Atoi(fmt.Sprint(v))
				if err != nil {
					return nil, fmt.Errorf("inventory host %s: ansible_port %v is not a number", name, v)
				}
				h.Port = p
			case "ansible_connection":
				if v == "local" {
					h.Transport = "local"
				}
			default:
				h.Vars[k] = v
			}
		}
		for r := range a.roles {
			h.Roles = append(h.Roles, r)
		}
		sort.Strings(h.Roles)
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
