package scale

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/targets"
)

func TestMixFor(t *testing.T) {
	tests := []struct {
		total int
		want  mix
	}{
		{200, mix{Files: 170, Packages: 20, Services: 10, Changed: 10, Missing: 10}},
		{20, mix{Files: 17, Packages: 2, Services: 1, Changed: 1, Missing: 1}},
		// Packages and services are capped by what the base holds.
		{1000, mix{Files: 1000 - len(basePackages) - len(baseServices), Packages: len(basePackages),
			Services: len(baseServices), Changed: 56, Missing: 56}},
	}
	for _, tt := range tests {
		got := mixFor(tt.total)
		if got != tt.want {
			t.Errorf("mixFor(%d) = %+v, want %+v", tt.total, got, tt.want)
		}
		if n := len(got.resources()); n != tt.total {
			t.Errorf("mixFor(%d) declares %d resources", tt.total, n)
		}
	}
}

// TestPlaybookMatchesResources checks that the Ansible playbook declares
// exactly the driftless resources: same order, same paths, contents,
// modes, owners, packages and services.
func TestPlaybookMatchesResources(t *testing.T) {
	m := mixFor(200)
	book, err := playbook(m)
	if err != nil {
		t.Fatal(err)
	}
	var plays []struct {
		Hosts       string           `yaml:"hosts"`
		GatherFacts bool             `yaml:"gather_facts"`
		Tasks       []map[string]any `yaml:"tasks"`
	}
	if err := yaml.Unmarshal(book, &plays); err != nil {
		t.Fatalf("playbook does not parse: %v", err)
	}
	if len(plays) != 1 || plays[0].Hosts != "all" || plays[0].GatherFacts {
		t.Fatalf("want one play on all hosts without facts, got %+v", plays)
	}
	rs := m.resources()
	if len(plays[0].Tasks) != len(rs) {
		t.Fatalf("%d tasks for %d resources", len(plays[0].Tasks), len(rs))
	}
	for i, r := range rs {
		task := plays[0].Tasks[i]
		switch spec := r.Spec.(type) {
		case *targets.FileSpec:
			c, _ := task["ansible.builtin.copy"].(map[string]any)
			if c["dest"] != r.Name || c["content"] != spec.Content || c["mode"] != spec.Mode ||
				c["owner"] != spec.Owner || c["group"] != spec.Group {
				t.Errorf("task %d %v does not match %s", i, task["name"], r.ID())
			}
		case *targets.PackageSpec:
			a, _ := task["ansible.builtin.apt"].(map[string]any)
			if a["name"] != r.Name || a["state"] != "present" || spec.State != "present" {
				t.Errorf("task %d %v does not match %s", i, task["name"], r.ID())
			}
		case *targets.ServiceSpec:
			s, _ := task["ansible.builtin.service"].(map[string]any)
			if s["name"] != r.Name || s["state"] != "started" || s["enabled"] != *spec.Enabled || task["ignore_errors"] != true {
				t.Errorf("task %d %v does not match %s", i, task["name"], r.ID())
			}
		default:
			t.Errorf("resource %s has unexpected spec %T", r.ID(), r.Spec)
		}
	}
}

// TestSeed checks the drift a scan must find: Changed files differ,
// Missing files are absent, the rest hold the declared bytes.
func TestSeed(t *testing.T) {
	m := mixFor(200)
	root := t.TempDir()
	if err := m.seed(root); err != nil {
		t.Fatal(err)
	}
	same, differ, missing := 0, 0, 0
	for i := 0; i < m.Files; i++ {
		data, err := os.ReadFile(filepath.Join(root, filePath(i)))
		switch {
		case os.IsNotExist(err):
			missing++
		case err != nil:
			t.Fatal(err)
		case string(data) == fileContent(i):
			same++
		default:
			differ++
		}
	}
	if differ != m.Changed || missing != m.Missing || same != m.Files-m.Drifted() {
		t.Errorf("seeded %d same, %d differing, %d missing; want %d, %d, %d",
			same, differ, missing, m.Files-m.Drifted(), m.Changed, m.Missing)
	}
}

const recapSample = `TASK [service nftables] ********************************************************
fatal: [sc1-2]: FAILED! => {"changed": false, "msg": "Could not find the requested service nftables: host"}
...ignoring

PLAY RECAP *********************************************************************
sc1-0                      : ok=200  changed=20   unreachable=0    failed=0    skipped=0    rescued=0    ignored=10
sc1-1                      : ok=190  changed=3    unreachable=1    failed=2    skipped=4    rescued=5    ignored=6
`

func TestParseRecap(t *testing.T) {
	got := parseRecap([]byte(recapSample))
	want := map[string]recap{
		"sc1-0": {OK: 200, Changed: 20, Ignored: 10},
		"sc1-1": {OK: 190, Changed: 3, Unreachable: 1, Failed: 2, Skipped: 4, Rescued: 5, Ignored: 6},
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %d hosts, want %d: %+v", len(got), len(want), got)
	}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("%s: %+v, want %+v", h, got[h], w)
		}
	}
	// A line shaped like a recap before PLAY RECAP is task output, not a recap.
	if r := parseRecap([]byte("x : ok=1 changed=1 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0\n")); len(r) != 0 {
		t.Errorf("recap outside PLAY RECAP parsed: %+v", r)
	}
}

func TestAnsibleAgrees(t *testing.T) {
	m := mixFor(200)
	tests := []struct {
		name string
		r    recap
		ok   bool
	}{
		{"same drift", recap{OK: 200, Changed: 20, Ignored: 10}, true},
		{"one more change", recap{OK: 200, Changed: 21, Ignored: 9}, false},
		{"unreachable", recap{Unreachable: 1}, false},
		{"failed", recap{OK: 199, Changed: 20, Failed: 1, Ignored: 10}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ansibleAgrees(tt.r, m); (err == nil) != tt.ok {
				t.Errorf("ansibleAgrees(%+v) = %v, want ok=%v", tt.r, err, tt.ok)
			}
		})
	}
}

// FuzzParseRecap feeds arbitrary ansible-playbook output to the recap
// parser: it must not panic, and every host it returns must come from a
// line after PLAY RECAP.
func FuzzParseRecap(f *testing.F) {
	f.Add([]byte(recapSample))
	f.Add([]byte("PLAY RECAP\n: ok=1 changed=1 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		got := parseRecap(out)
		_, after, found := strings.Cut(string(out), "PLAY RECAP")
		if !found && len(got) != 0 {
			t.Fatalf("recap without PLAY RECAP: %+v", got)
		}
		for h := range got {
			if !strings.Contains(after, h) {
				t.Fatalf("host %q not in the recap part", h)
			}
		}
	})
}
