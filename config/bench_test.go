package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// BenchmarkLoadRevision loads an environment of 200 hosts sharing a role
// of 20 resources (one of them a template), the size of a large fleet.
func BenchmarkLoadRevision(b *testing.B) {
	var role strings.Builder
	role.WriteString("role: app\nresources:\n  - file: /etc/app/app.conf\n    template: files/app.tmpl\n")
	for i := 0; i < 19; i++ {
		fmt.Fprintf(&role, "  - file: /etc/app/f%d\n    content: \"x%d\\n\"\n    mode: \"0644\"\n", i, i)
	}
	var env strings.Builder
	env.WriteString("environment: big\nhosts:\n")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&env, "  - name: h%d\n    address: 10.0.%d.%d\n    roles: [app]\n    vars: {port: %d}\n", i, i/250, i%250+1, 8000+i)
	}
	env.WriteString("verify:\n  - http: \"http://{{ .Host.Address }}:{{ .Vars.port }}/healthz\"\n")
	dir := writeRepo(b, map[string]string{
		"roles/app.yaml":        role.String(),
		"files/app.tmpl":        "listen {{ .Host.Address }}:{{ .Vars.port }}\n",
		"environments/big.yaml": env.String(),
	})
	b.ReportAllocs()
	for b.Loop() {
		rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
		if err != nil || len(rev.Environments[0].Hosts) != 200 {
			b.Fatalf("load: %v", err)
		}
	}
}
