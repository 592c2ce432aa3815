package config

import (
	"path/filepath"
	"reflect"
	"strings"
)

// resolvePaths makes every relative file path of the configuration
// relative to dir, the folder of driftless.yaml, so that the daemon reads
// the same files whatever its working directory: the state folder, every
// secret file, the SSH key and known_hosts files, the agent binaries folder, the etcd TLS files, local
// sources, and the key files and URL of a Git source when that URL is a
// plain local path.
func resolvePaths(cfg *Daemon, dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&cfg.StateDir)
	abs(&cfg.SSH.KeyFile)
	abs(&cfg.SSH.KnownHosts)
	abs(&cfg.Agent.Binaries)
	if c := cfg.Cluster; c != nil {
		abs(&c.TLS.CAFile)
		abs(&c.TLS.CertFile)
		abs(&c.TLS.KeyFile)
	}
	for i := range cfg.Secrets.AgeKeyFiles {
		abs(&cfg.Secrets.AgeKeyFiles[i])
	}
	for i := range cfg.Sources {
		if l := cfg.Sources[i].Local; l != nil {
			abs(&l.Path)
		}
		if g := cfg.Sources[i].Git; g != nil {
			abs(&g.KnownHosts)
			abs(&g.SigningKeys)
			if isLocalPath(g.URL) {
				abs(&g.URL)
			}
		}
	}
	eachSecret(reflect.ValueOf(cfg).Elem(), func(s *Secret) { abs(&s.File) })
}

// isLocalPath says whether a Git URL is a path on this machine: no scheme
// and not the scp-like "host:path" form.
func isLocalPath(url string) bool {
	if url == "" || strings.Contains(url, "://") {
		return false
	}
	before, _, found := strings.Cut(url, ":")
	return !found || strings.Contains(before, "/")
}

// eachSecret calls fn for every Secret reachable from v, through structs,
// pointers and slices, so that a secret added to the configuration later
// cannot be forgotten here.
func eachSecret(v reflect.Value, fn func(*Secret)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			eachSecret(v.Elem(), fn)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			eachSecret(v.Index(i), fn)
		}
	case reflect.Struct:
		if s, ok := v.Addr().Interface().(*Secret); ok {
			fn(s)
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				eachSecret(v.Field(i), fn)
			}
		}
	}
}
