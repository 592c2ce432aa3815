package targets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

// serverDriverCases are a resource of each server driver, for the fuzzer.
func serverDriverCases() []struct {
	d Driver
	r config.Resource
} {
	yes := true
	return []struct {
		d Driver
		r config.Resource
	}{
		{&ArtifactDriver{}, config.Resource{Kind: "artifact", Name: "/opt/a", Spec: &ArtifactSpec{SHA256: strings.Repeat("a", 64)}}},
		{&ServiceDriver{}, config.Resource{Kind: "service", Name: "app", Spec: &ServiceSpec{Unit: "[Service]\n", State: "running", Enabled: &yes}}},
		{&PackageDriver{}, config.Resource{Kind: "package", Name: "p", Spec: &PackageSpec{Version: "1.0"}}},
		{&SysctlDriver{}, config.Resource{Kind: "sysctl", Name: "a.b", Spec: &SysctlSpec{Value: "1"}}},
		{&UserDriver{}, config.Resource{Kind: "user", Name: "u", Spec: &UserSpec{Groups: []string{"g"}}}},
		{&GroupDriver{}, config.Resource{Kind: "group", Name: "g", Spec: &GroupSpec{GID: 5}}},
	}
}

// FuzzServerDriverParse feeds arbitrary query answers (they come from hosts,
// which driftless does not trust) to every server driver: Parse either
// fails or returns a state that Diff can compare, and nothing panics.
func FuzzServerDriverParse(f *testing.F) {
	for _, s := range []string{
		"dir=1\ncurrent=releases/aaaaaaaaaaaa\nok=1\nrelease=aaaaaaaaaaaa\n",
		"LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n" + unitMarker + "\nunitfile=1\n[Service]\n",
		"manager=apt\nstatus=ii \nversion=1.0\n",
		"value=1\t2\n",
		"passwd=u:x:1000:1000::/home/u:/bin/sh\nprimary=u\ngroups=u g\n",
		"group=g:x:5:a,b\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		for _, c := range serverDriverCases() {
			st, err := c.d.Parse(c.r, []byte(out))
			if err != nil {
				continue
			}
			ch := c.d.Diff(c.r, st)
			if ch.Action == "" {
				t.Fatalf("%s: empty action for %q", c.r.ID(), out)
			}
		}
	})
}

// TestPackageParse reads dpkg and rpm outputs the hosts of the tests do not
// produce (several architectures, epochs, distribution release tags).
func TestPackageParse(t *testing.T) {
	r := config.Resource{Kind: "package", Name: "p", Spec: &PackageSpec{}}
	cases := []struct {
		name, out       string
		present         bool
		status, version string
	}{
		{"never heard of", "manager=apt\n", false, "", ""},
		{"config files left", "manager=apt\nstatus=rc \nversion=1.0\n", false, "rc", ""},
		{"installed", "manager=apt\nstatus=ii \nversion=2.0-1\n", true, "ii", "2.0-1"},
		{"second architecture installed", "manager=apt\nstatus=un \nversion=\nstatus=ii \nversion=3\n", true, "ii", "3"},
		{"half configured", "manager=apt\nstatus=iF \nversion=1\n", false, "iF", ""},
		{"rpm without epoch", "manager=dnf\nstatus=ii\nversion=(none):2.0-1.fc40\n", true, "ii", "2.0-1.fc40"},
		{"rpm with epoch", "manager=dnf\nstatus=ii\nversion=1:2.0-1\n", true, "ii", "1:2.0-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := (&PackageDriver{}).Parse(r, []byte(tc.out))
			if err != nil {
				t.Fatal(err)
			}
			if st.Present != tc.present || st.Fields["status"] != tc.status || st.Fields["version"] != tc.version {
				t.Fatalf("got %+v, want present=%t status=%q version=%q", st, tc.present, tc.status, tc.version)
			}
		})
	}
	if _, err := (&PackageDriver{}).Parse(r, []byte("garbage")); err == nil {
		t.Fatal("output without a manager parsed")
	}
	if !versionMatches(ManagerDnf, "2.0-1.fc40", "2.0") || versionMatches(ManagerApt, "2.0-1", "2.0") {
		t.Fatal("pin matching: an rpm pin may leave out the release, an apt pin may not")
	}
}

// TestServiceDiff covers the declarations the host test does not: a sandbox
// root, an unmanaged unit file, and a unit systemd does not know.
func TestServiceDiff(t *testing.T) {
	yes := true
	cases := []struct {
		name   string
		spec   ServiceSpec
		st     State
		action Action
		diff   string
	}{
		{"sandbox ignores systemd", ServiceSpec{Unit: "x\n", State: "running", Enabled: &yes},
			State{Present: true, Fields: map[string]string{"sandbox": "1", "unitfile": "1"}, Content: []byte("x\n")}, NoChange, ""},
		{"vendor unit running", ServiceSpec{State: "running"},
			State{Present: true, Fields: map[string]string{"load": "loaded", "active": "active", "enabled": "enabled"}}, NoChange, ""},
		{"vendor unit to stop", ServiceSpec{State: "stopped"},
			State{Present: true, Fields: map[string]string{"load": "loaded", "active": "active"}}, Update, "state: active -> stopped"},
		{"unknown unit", ServiceSpec{State: "running"},
			State{Fields: map[string]string{"load": "not-found", "active": "inactive"}}, Create, "state: inactive -> running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			c := (&ServiceDriver{}).Diff(config.Resource{Kind: "service", Name: "app", Spec: &spec}, tc.st)
			if c.Action != tc.action || c.Diff != tc.diff {
				t.Fatalf("got %s %q, want %s %q", c.Action, c.Diff, tc.action, tc.diff)
			}
		})
	}
}

// TestSandboxRoot runs the service and sysctl drivers against a sandbox
// root (the local transport of demos): only files under the root change,
// and restores put them back.
func TestSandboxRoot(t *testing.T) {
	root := t.TempDir()
	tr := NewLocal(root)
	knob := filepath.Join(root, "proc/sys/net/ipv4/ip_forward")
	if err := os.MkdirAll(filepath.Dir(knob), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(knob, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sd := &SysctlDriver{}
	sr := config.Resource{Kind: "sysctl", Name: "net.ipv4.ip_forward", Spec: &SysctlSpec{Value: "1"}}
	before := srvObserve(t, tr, sd, sr)
	srvMustConverge(t, tr, sd, sr, Update)
	if b, _ := os.ReadFile(knob); string(b) != "1\n" {
		t.Fatalf("sandbox knob = %q", b)
	}
	if err := sd.Restore(t.Context(), tr, sr, before); err != nil {
		t.Fatal(err)
	}
	if got := srvObserve(t, tr, sd, sr); !reflect.DeepEqual(got, before) {
		t.Fatalf("after restore %+v, want %+v", got, before)
	}

	yes := true
	svd := &ServiceDriver{}
	svr := config.Resource{Kind: "service", Name: "app", Spec: &ServiceSpec{Unit: "[Service]\nExecStart=/bin/true\n", State: "running", Enabled: &yes}}
	before = srvObserve(t, tr, svd, svr)
	srvMustConverge(t, tr, svd, svr, Create)
	if b, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/app.service")); string(b) != "[Service]\nExecStart=/bin/true\n" {
		t.Fatalf("sandbox unit = %q", b)
	}
	srvMustConverge(t, tr, svd, svr, NoChange)
	if err := svd.Restore(t.Context(), tr, svr, before); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/app.service")); !os.IsNotExist(err) {
		t.Fatalf("restore left the unit: %v", err)
	}
}

// noShell is the local transport failing any shell script: what it
// observes and applies, it does natively.
type noShell struct {
	*Local
	t *testing.T
}

func (n noShell) Run(context.Context, string, []byte) (Result, error) {
	n.t.Error("a shell script ran")
	return Result{}, errors.New("no shell here")
}

// TestSandboxRootObservedNatively observes the server and network kinds
// under a sandbox root with no shell: users and groups from the root's
// own account files (the first entries of the name, no group memberships
// asked), services from the root's unit file only (systemd is the
// machine's), and packages and network resources refused by their
// queries; an invalid resource is reported with its kind's
// validation.
func TestSandboxRootObservedNatively(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"etc/passwd":                     "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\napp:x:1001:1:dup:/x:/bin/sh\n",
		"etc/group":                      "root:x:0:\napp:x:1000:b,a\n",
		"etc/systemd/system/app.service": "[Service]\nExecStart=/bin/true\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs := []config.Resource{
		{Kind: "user", Name: "app", Spec: &UserSpec{}},
		{Kind: "user", Name: "nobody", Spec: &UserSpec{}},
		{Kind: "group", Name: "app", Spec: &GroupSpec{}},
		{Kind: "group", Name: "nogroup", Spec: &GroupSpec{}},
		{Kind: "service", Name: "app", Spec: &ServiceSpec{State: ServiceRunning}},
		{Kind: "service", Name: "none", Spec: &ServiceSpec{}},
		{Kind: "package", Name: "bash", Spec: &PackageSpec{}},
		{Kind: "address", Name: "10.0.0.5/24", Spec: &AddressSpec{Interface: "eth0"}},
		{Kind: "route", Name: "r", Spec: &RouteSpec{To: "10.1.0.0/16", Via: "10.0.0.1"}},
		{Kind: "firewall", Name: "fw", Spec: &FirewallSpec{Allow: []string{"tcp/22"}}},
		{Kind: "user", Name: "Bad", Spec: &UserSpec{}},
	}
	states, err := Observe(t.Context(), noShell{NewLocal(root), t}, Drivers(), rs)
	want := map[string]State{
		"user:app":      {Present: true, Fields: map[string]string{"uid": "1000", "gid": "1000", "home": "/home/app", "shell": "/bin/sh", "groups": ""}},
		"user:nobody":   {Fields: map[string]string{}},
		"group:app":     {Present: true, Fields: map[string]string{"gid": "1000", "members": "a,b"}},
		"group:nogroup": {},
		"service:app": {Present: true, Fields: map[string]string{"sandbox": "1", "unitfile": "1"},
			Content: []byte("[Service]\nExecStart=/bin/true\n")},
		"service:none": {Fields: map[string]string{"sandbox": "1"}},
	}
	if !reflect.DeepEqual(states, want) {
		t.Errorf("states\n%+v\nwant\n%+v", states, want)
	}
	for _, w := range []string{
		"observe package:bash: package bash: packages are managed only on real hosts, not in a sandbox root",
		"observe address:10.0.0.5/24: address:10.0.0.5/24: network resources need a real host, not a sandbox root",
		"observe route:r: route:r: network resources need a real host, not a sandbox root",
		"observe firewall:fw: firewall:fw: network resources need a real host, not a sandbox root",
		`observe user:Bad: user:Bad: user: "Bad" is not a valid user name`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("observe said %v, want %q", err, w)
		}
	}
}
