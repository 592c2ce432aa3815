package targets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/driftless/driftless/config"
)

// NativeObserver is a transport that observes some kinds itself, in one
// process on the host with no process started per resource: the driftless
// agent (package agent), over an SSH session or in the daemon's own
// process for the local transport. Observe hands it every resource it
// can describe as a Query and runs the shell probes of the others.
//
// The agent answers a query with what the kind's shell probe would have
// printed on the same host, and the kind's own Parse reads it: the two
// paths share one parser, so their states (and so their diffs, changes and
// snapshots) cannot disagree while both exist.
type NativeObserver interface {
	ObserveNative(ctx context.Context, qs []Query) ([]Answer, error)
}

// CheckRunner is a transport that runs command checks itself on the host
// (the agent, over the session it already holds) instead of a shell
// session per check. The result carries the exit status and stderr.
type CheckRunner interface {
	RunCheck(ctx context.Context, script string) (Result, error)
}

// Query is one resource to observe natively, as the agent needs it: no
// declared content, no command, only where to look.
type Query struct {
	Kind string `json:"kind"`
	// Name is the package, user, group, unit or kernel parameter name.
	Name string `json:"name,omitempty"`
	// Path is the host path of a file, folder or link, or the /proc/sys
	// file of a kernel parameter, or a unit's file (the transport's root
	// already applied).
	Path string `json:"path,omitempty"`
	// Conf is a kernel parameter's sysctl.d file.
	Conf string `json:"conf,omitempty"`
	// Family is a route's address family, "inet" or "inet6" (ip's -4 or
	// -6).
	Family string `json:"family,omitempty"`
	// Sum is the SHA-256 (hex) of a large declared file's content: a file
	// holding exactly it is answered with the probe's same-content mark.
	Sum string `json:"sum,omitempty"`
}

// Answer is the agent's answer to one Query: the probe's output, or why
// the resource could not be observed (the probe's failure).
type Answer struct {
	Out []byte `json:"out,omitempty"`
	Err string `json:"err,omitempty"`
}

// FirewallTextMark separates the firewall probe's JSON listing of the
// driftless table from its text listing; the agent prints it as the probe
// does.
const FirewallTextMark = fwTextMark

// ServiceUnitMarker separates a service probe's unit properties from its
// unit file; the agent prints it as the probe does.
const ServiceUnitMarker = unitMarker

// NativeQuery describes r for a NativeObserver; ok is false for a kind or a
// resource the agent does not observe (an invalid one included: its shell
// probe then reports the error, the same one as before).
func NativeQuery(r config.Resource, root string) (Query, bool) {
	q := Query{Kind: r.Kind}
	switch r.Kind {
	case "file":
		spec, err := specOf(r, validateFile)
		if err != nil {
			return q, false
		}
		if spec.State != config.Absent && len(spec.Content) >= hashThreshold {
			sum := sha256.Sum256([]byte(spec.Content))
			q.Sum = hex.EncodeToString(sum[:])
		}
		return pathQuery(q, r, root)
	case "env":
		// An env file is probed as a file without a declared hash.
		if _, err := specOf(r, validateEnv); err != nil {
			return q, false
		}
		q.Kind = "file"
		return pathQuery(q, r, root)
	case "directory":
		if _, err := specOf(r, validateDirectory); err != nil {
			return q, false
		}
		return pathQuery(q, r, root)
	case "symlink":
		if _, err := specOf(r, validateSymlink); err != nil {
			return q, false
		}
		return pathQuery(q, r, root)
	case "sysctl":
		if _, err := specOf(r, validateSysctl); err != nil {
			return q, false
		}
		p, err := sysctlPath(r.Name)
		if err != nil {
			return q, false
		}
		if q.Path, err = hostPath(root, p); err != nil {
			return q, false
		}
		if q.Conf, err = hostPath(root, sysctlConf(r.Name)); err != nil {
			return q, false
		}
		q.Name = r.Name
		return q, true
	case "package":
		s, err := specOf(r, validatePackage)
		// An architecture-qualified name ("libc6:amd64") stays with the
		// shell probe: the agent's one query matches plain names.
		if err != nil || root != "" || checkPackage(r.Name, s.Version) != nil || strings.Contains(r.Name, ":") {
			return q, false
		}
		q.Name = r.Name
		return q, true
	case "service":
		if _, err := specOf(r, validateService); err != nil || root != "" || validUnitName(r.Name) != nil {
			return q, false
		}
		q.Name, q.Path = unitName(r.Name), unitPath(r.Name)
		return q, true
	case "address":
		s, _, err := addressOf(r)
		if err != nil || root != "" {
			return q, false
		}
		q.Name = s.Interface
		return q, true
	case "route":
		_, dst, fam, err := routeDst(r)
		if err != nil || root != "" {
			return q, false
		}
		q.Name, q.Family = dst, "inet"
		if fam == "-6" {
			q.Family = "inet6"
		}
		return q, true
	case "firewall":
		// One listing of the driftless table answers every firewall
		// resource of the batch.
		if _, _, _, err := firewallOf(r); err != nil || root != "" {
			return q, false
		}
		return q, true
	case "user", "group":
		var err error
		if r.Kind == "user" {
			_, err = specOf(r, validateUser)
		} else {
			_, err = specOf(r, validateGroup)
		}
		if err != nil || root != "" || !accountName.MatchString(r.Name) {
			return q, false
		}
		q.Name = r.Name
		return q, true
	}
	return q, false
}

func pathQuery(q Query, r config.Resource, root string) (Query, bool) {
	p, err := hostPath(root, r.Name)
	if err != nil {
		return q, false
	}
	q.Path = p
	return q, true
}

// observeNative observes natively the resources of rs that n can observe,
// parsing each answer with its kind's Parse. It returns the states and
// errors it found and marks in done the resources it took; the caller
// probes the others.
func observeNative(ctx context.Context, n NativeObserver, ds []Driver, rs []config.Resource, root string,
	states map[string]State, done []bool) ([]error, error) {
	var qs []Query
	var idx []int
	for i, r := range rs {
		if q, ok := NativeQuery(r, root); ok {
			qs, idx = append(qs, q), append(idx, i)
		}
	}
	if len(qs) == 0 {
		return nil, nil
	}
	answers, err := n.ObserveNative(ctx, qs)
	if err != nil {
		return nil, fmt.Errorf("observe %d resources natively: %w", len(qs), err)
	}
	if len(answers) != len(qs) {
		return nil, fmt.Errorf("observe %d resources natively: %d answers", len(qs), len(answers))
	}
	var errs []error
	for j, a := range answers {
		i := idx[j]
		r := rs[i]
		done[i] = true
		if a.Err != "" {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: fmt.Errorf("probe exited 1: %s", trimOutput([]byte(a.Err)))})
			continue
		}
		st, err := ds[i].Parse(r, a.Out)
		if err != nil {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: err})
			continue
		}
		states[r.ID()] = st
	}
	return errs, nil
}
