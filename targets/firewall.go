package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/driftless/driftless/config"
)

// FirewallDriver keeps the host's nftables table owned by driftless,
// `table inet driftless`. Its layout:
//
//	chain input: hook input, priority filter, policy accept or drop
//	  ct state established,related accept   (the control connection survives a policy drop)
//	  iif "lo" accept
//	  jump fw_NAME comment "policy=P"        (one per firewall resource, sorted by name)
//	chain fw_NAME: the resource's deny rules (drop), then its allow rules (accept)
//
// Several firewall resources may share a host: each owns its chain fw_NAME
// and its jump, whose comment records the policy it declared; the input
// policy is drop when any of them declares drop. Since a driver sees one
// resource at a time, Apply reads the live table, replaces only its own
// chain, and writes the whole table back in ONE nft transaction (`table
// inet driftless {}`, `delete table inet driftless`, the full definition),
// so the host never runs a half-written ruleset. The table belongs to
// driftless: rules added to it by hand are drift, shown as "unrecognised"
// and removed by the next apply. Deleting a firewall resource from the
// declaration does not remove its chain (the spec has no state: absent).
//
// Apply is commit-confirmed (see ApplyConfirmed): the revert armed on the
// host puts back the exact previous table text, or its absence.
type FirewallDriver struct {
	// ConfirmTimeout is how long the host waits for the confirmation
	// before reverting; zero means DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
}

var (
	_ Driver     = (*FirewallDriver)(nil)
	_ NativeKind = (*FirewallDriver)(nil)
)

// fwName is a firewall resource name, also part of its chain name.
var fwName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Kind returns "firewall".
func (*FirewallDriver) Kind() string { return "firewall" }

// FirewallSpec adds rules to the host's nftables table owned by driftless
// (table inet driftless). In YAML `firewall: {allow: [tcp/8080], from: 10.0.0.0/24}`,
// with an optional `name` (the resource name; default "default"). All firewall
// resources of a host are rendered into the one table, replaced atomically.
type FirewallSpec struct {
	Name   string   `yaml:"name" json:"name,omitempty"`
	Allow  []string `yaml:"allow" json:"allow,omitempty"`
	Deny   []string `yaml:"deny" json:"deny,omitempty"`
	From   string   `yaml:"from" json:"from,omitempty"`
	Policy string   `yaml:"policy" json:"policy,omitempty"` // accept (default) | drop, for the input chain
}

// NewSpec returns an empty firewall spec.
func (*FirewallDriver) NewSpec() any { return &FirewallSpec{} }

// Name is a firewall's name: its name key, "default" without one.
func (*FirewallDriver) Name(spec any) string {
	if s, ok := spec.(*FirewallSpec); ok && s.Name != "" {
		return s.Name
	}
	return "default"
}

// Validate is the firewall kind's one validation.
func (*FirewallDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateFirewall)
}

func validateFirewall(name string, s *FirewallSpec) []config.Problem {
	var p problems
	if name == "" {
		name = "default"
	}
	if !fwName.MatchString(name) {
		p.add("name", "name: %q may hold only letters, digits, - and _, at most 64 of them", name)
	}
	if len(s.Allow) == 0 && len(s.Deny) == 0 && s.Policy == "" {
		p.add("", "a firewall needs allow, deny or policy")
	}
	for _, list := range []struct {
		key   string
		rules []string
	}{{"allow", s.Allow}, {"deny", s.Deny}} {
		for _, rule := range list.rules {
			if _, err := parseFwRule(true, rule, ""); err != nil {
				p.add(list.key, "%s: %v", list.key, err)
			}
		}
	}
	if _, err := canonFrom(s.From); err != nil {
		p.add("from", "from: %q is not an address or a CIDR prefix", s.From)
	}
	p.oneOf("policy", s.Policy, "accept", "drop")
	return p
}

// fwTextMark separates, in a firewall observation, the table as nft's
// JSON from the table as nft's text (the text is what a restore feeds
// back to nft -f).
const fwTextMark = "--- driftless nft text ---"

// firewallOf returns r's spec, its chain name, its declared policy and its
// rules in the order they are written: denies first, then allows.
func firewallOf(r config.Resource) (chain, policy string, rules []string, err error) {
	s, err := specOf(r, validateFirewall)
	if err != nil {
		return "", "", nil, err
	}
	name := r.Name
	if name == "" {
		name = "default"
	}
	policy = s.Policy
	if policy == "" {
		policy = "accept"
	}
	for _, list := range []struct {
		allow bool
		rules []string
	}{{false, s.Deny}, {true, s.Allow}} {
		for _, text := range list.rules {
			fr, err := parseFwRule(list.allow, text, s.From)
			if err != nil {
				return "", "", nil, fmt.Errorf("%s: %w", r.ID(), err)
			}
			rules = append(rules, fr.String())
		}
	}
	return "fw_" + name, policy, rules, nil
}

// parseFwProbe reads the firewall query's answer (what observeNative
// prints) into the table and its text.
func parseFwProbe(out []byte) (fwTable, string, error) {
	if string(bytes.TrimSpace(out)) == "absent" {
		return fwTable{}, "", nil
	}
	js, text, ok := bytes.Cut(out, []byte("\n"+fwTextMark+"\n"))
	if !ok {
		return fwTable{}, "", fmt.Errorf("unexpected nft output %q", trimOutput(out))
	}
	t, err := parseNftTable(js)
	return t, string(text), err
}

// Parse reads the resource's part of the table. Fields: policy (the input
// chain's), own_policy (from this resource's jump), others_drop ("true"
// when another resource declared drop), base ("ok" when the input chain is
// as driftless writes it), rules (one per line). Content is the whole
// table's text, the snapshot a restore puts back.
func (*FirewallDriver) Parse(r config.Resource, out []byte) (State, error) {
	chain, _, _, err := firewallOf(r)
	if err != nil {
		return State{}, err
	}
	t, text, err := parseFwProbe(out)
	if err != nil {
		return State{}, fmt.Errorf("parse firewall of %s: %w", r.ID(), err)
	}
	st := State{Fields: map[string]string{"table": "absent"}, Content: []byte(text)}
	if !t.Present {
		return st, nil
	}
	st.Fields["table"], st.Fields["policy"], st.Fields["base"] = "present", t.Policy, "differs"
	if t.Base {
		st.Fields["base"] = "ok"
	}
	rules, hasChain := t.Chains[chain]
	for _, j := range t.Jumps {
		switch {
		case j.Chain == chain:
			st.Present = hasChain
			st.Fields["own_policy"] = j.Policy
		case j.Policy == "drop":
			st.Fields["others_drop"] = "true"
		}
	}
	st.Fields["rules"] = strings.Join(rules, "\n")
	return st, nil
}

// query describes a firewall resource for native observation: one
// listing of the driftless table answers every firewall resource of the
// batch.
func (*FirewallDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	if _, _, _, err := firewallOf(r); err != nil {
		return q, err
	}
	if root != "" {
		return q, errSandbox(r.ID())
	}
	return q, nil
}

// observeNative prints the firewall query's answer: "absent", or the
// driftless table as nft's JSON, the text mark and the table as nft's
// text. The table is listed once per batch, however many firewall
// resources it holds: three nft calls per host, not per resource.
func (*FirewallDriver) observeNative(o *observation, _ Query) ([]byte, error) {
	if !o.fwDone {
		o.fwDone = true
		o.fw, o.fwErr = listFirewall(o.ctx)
	}
	return o.fw, o.fwErr
}

func listFirewall(ctx context.Context) ([]byte, error) {
	tables, err := exec.CommandContext(ctx, "nft", "list", "tables").CombinedOutput()
	if err != nil {
		return nil, nftErr(err, tables)
	}
	if !bytes.Contains(append([]byte("\n"), tables...), []byte("\ntable inet driftless\n")) {
		return []byte("absent\n"), nil
	}
	js, err := nftOut(ctx, "-j", "list", "table", "inet", "driftless")
	if err != nil {
		return nil, err
	}
	text, err := nftOut(ctx, "list", "table", "inet", "driftless")
	if err != nil {
		return nil, err
	}
	out := append(js, "\n"+fwTextMark+"\n"...)
	return append(out, text...), nil
}

func nftOut(ctx context.Context, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nft", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nftErr(err, stderr.Bytes())
	}
	return out, nil
}

// nftErr is nft's failure: what nft said, else its exit error.
func nftErr(err error, said []byte) error {
	if s := strings.TrimSpace(string(said)); s != "" {
		return errors.New(s)
	}
	return fmt.Errorf("nft: %w", err)
}

// Diff shows the rules added and removed, and the policy and layout changes.
func (d *FirewallDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Before: observed, Action: NoChange}
	_, policy, rules, err := firewallOf(r)
	if err != nil {
		c.Action, c.Diff = Update, "error: "+err.Error()
		return c
	}
	f := observed.Fields
	var diffs []string
	if f["table"] != "present" {
		diffs = append(diffs, "table inet driftless: (absent) -> created")
	} else if f["base"] != "ok" {
		diffs = append(diffs, "input chain: changed by hand -> rewritten")
	}
	if f["table"] == "present" && !observed.Present {
		diffs = append(diffs, r.ID()+": (absent) -> added to table inet driftless")
	}
	if observed.Present && f["own_policy"] != policy {
		diffs = append(diffs, "declared policy: "+orNone(f["own_policy"])+" -> "+policy)
	}
	wantPolicy := "accept"
	if policy == "drop" || f["others_drop"] == "true" {
		wantPolicy = "drop"
	}
	if f["policy"] != wantPolicy {
		diffs = append(diffs, "policy: "+orNone(f["policy"])+" -> "+wantPolicy)
	}
	var have []string
	if f["rules"] != "" {
		have = strings.Split(f["rules"], "\n")
	}
	if strings.Join(have, "\n") != strings.Join(rules, "\n") {
		diffs = append(diffs, ruleDiff(have, rules)...)
	}
	c.Action, c.Diff = action(observed.Present, diffs), strings.Join(diffs, "\n")
	return c
}

// ruleDiff lists removed rules ("- ") and added ones ("+ "); when only the
// order differs, it shows both orders.
func ruleDiff(have, want []string) []string {
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	var out []string
	for _, h := range have {
		if !in(want, h) {
			out = append(out, "- "+h)
		}
	}
	for _, w := range want {
		if !in(have, w) {
			out = append(out, "+ "+w)
		}
	}
	if len(out) == 0 {
		out = append(out, "rule order: "+strings.Join(have, ", ")+" -> "+strings.Join(want, ", "))
	}
	return out
}

// readTable reads the live table in one round trip, through the
// transport's native observation (the agent's listing).
func readTable(ctx context.Context, t Transport) (fwTable, string, error) {
	n, ok := t.(NativeObserver)
	if !ok {
		return fwTable{}, "", errors.New("the transport does not observe natively (only the driftless agent and the local transport do)")
	}
	as, err := n.ObserveNative(ctx, []Query{{Kind: "firewall"}})
	switch {
	case err != nil:
		return fwTable{}, "", err
	case len(as) != 1:
		return fwTable{}, "", fmt.Errorf("%d answers to one query", len(as))
	case as[0].Err != "":
		return fwTable{}, "", errors.New(as[0].Err)
	}
	return parseFwProbe(as[0].Out)
}

// nftReplace is the script that replaces the table with text in one nft
// transaction, or removes it when text is "". The heredoc's end marker is
// random, so no table text can end it early.
func nftReplace(text string) string {
	eof := "DRIFTLESS_NFT_" + randomHex(8)
	return "nft -f /dev/stdin <<'" + eof + "'\ntable inet driftless {}\ndelete table inet driftless\n" + text + "\n" + eof + "\n"
}

// Apply writes this resource's chain into the live table, commit-confirmed.
func (d *FirewallDriver) Apply(ctx context.Context, t Transport, r config.Resource, _ State) error {
	if _, _, _, err := firewallOf(r); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if t.Root() != "" {
		return fmt.Errorf("apply %w", errSandbox(r.ID()))
	}
	// The table the revert puts back is read again rather than taken from
	// the observed state: another firewall resource of the host may have
	// been applied since, and its chain must be kept.
	_, text, err := readTable(ctx, t)
	if err != nil {
		return fmt.Errorf("apply %s: read the live table: %w", r.ID(), err)
	}
	err = ApplyConfirmed(ctx, t, d.ConfirmTimeout, nftReplace(text), func(ctx context.Context) error {
		return onlyNative(ctx, t, StepApply, r, State{})
	})
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// Restore puts back the exact table the snapshot saw, or its absence.
func (d *FirewallDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if t.Root() != "" {
		return fmt.Errorf("restore %w", errSandbox(r.ID()))
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// snapshotTable is the table text a snapshot saw, "" for none.
func snapshotTable(snapshot State) string {
	if snapshot.Fields["table"] == "present" {
		return string(snapshot.Content)
	}
	return ""
}

// ApplyNative is Apply on the host: the live table read (nft -j list),
// this resource's chain set in it, and the whole table written back in
// one nft transaction (nft -f -): two nft runs, no shell. The driver's
// Apply arms the revert around it.
func (*FirewallDriver) ApplyNative(ctx context.Context, _ *Host, r config.Resource, _ State) error {
	chain, policy, rules, err := firewallOf(r)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	table, err := liveTable(ctx)
	if err != nil {
		return fmt.Errorf("apply %s: read the live table: %w", r.ID(), err)
	}
	table.set(chain, policy, rules)
	if err := nftLoad(ctx, table.render()); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// RestoreNative is Restore on the host: the snapshot's table, or its
// absence, in one nft transaction.
func (*FirewallDriver) RestoreNative(ctx context.Context, _ *Host, r config.Resource, snapshot State) error {
	if err := nftLoad(ctx, snapshotTable(snapshot)); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	return nil
}

// liveTable reads the driftless table with one `nft -j list table`; a
// table that does not exist is read as absent.
func liveTable(ctx context.Context) (fwTable, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nft", "-j", "list", "table", "inet", "driftless")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No such file or directory") {
			return fwTable{}, nil
		}
		return fwTable{}, fmt.Errorf("nft -j list table: %w: %s", err, trimOutput(stderr.Bytes()))
	}
	return parseNftTable(out)
}

// nftLoad replaces the table with text in one nft transaction, or removes
// it when text is "", as nftReplace does, without a shell.
func nftLoad(ctx context.Context, text string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet driftless {}\ndelete table inet driftless\n" + text + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f: %w: %s", err, trimOutput(out))
	}
	return nil
}
