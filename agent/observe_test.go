package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/need"
)

// countingLocal is the local transport counting its shell runs, seen
// only as a Transport: it neither observes nor applies natively.
type countingLocal struct {
	targets.Transport
	runs int
}

func (c *countingLocal) Run(ctx context.Context, script string, stdin []byte) (targets.Result, error) {
	c.runs++
	return c.Transport.Run(ctx, script, stdin)
}

// nativeLocal is countingLocal observing natively, in process: a shell
// run through it is counted.
type nativeLocal struct{ *countingLocal }

func (n nativeLocal) ObserveNative(ctx context.Context, qs []targets.Query) ([]targets.Answer, error) {
	return targets.ObserveQueries(ctx, qs), nil
}

// sandbox lays out, under a sandbox root, every shape the path kinds and
// sysctl meet, and returns the resources that observe them.
func sandbox(t *testing.T) (string, []config.Resource) {
	root := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, uint32(mode)); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("a line of a large file\n", 1000)
	write("/etc/app.conf", "port = 8080\n", 0o640)
	write("/etc/empty", "", 0o600)
	write("/etc/big-same", big, 0o644)
	write("/etc/big-other", big+"x", 0o644)
	write("/etc/setuid", "#!/bin/sh\n", 0o4755)
	write("/etc/binary", "\x00\x01\xff\n\n", 0o644)
	write("/etc/notdir", "a file", 0o644)
	write("/proc/sys/net/ipv4/ip_forward", "1\n", 0o644)
	write("/proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n", 0o644)
	write("/etc/sysctl.d/99-driftless-net.ipv4.ip_forward.conf", "# managed\n; x\nnet.ipv4.ip_forward =   1  \nnet.ipv4.ip_forward = 0\n", 0o644)
	write("/etc/sysctl.d/99-driftless-net.ipv4.tcp_rmem.conf", "no key here\n", 0o644)
	for _, d := range []string{"/srv/dir", "/srv/sticky"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Chmod(filepath.Join(root, "/srv/sticky"), 0o1777); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"/srv/link": "/etc/app.conf", "/srv/dangling": "/nowhere", "/srv/dirlink": "/srv/dir"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "/srv/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(root, "/etc/app.conf"), 65534, 4242); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	file := func(name string, s targets.FileSpec) config.Resource {
		return config.Resource{Kind: "file", Name: name, Spec: &s}
	}
	rs := []config.Resource{
		file("/etc/app.conf", targets.FileSpec{Content: "port = 1\n"}),
		file("/etc/empty", targets.FileSpec{}),
		file("/etc/big-same", targets.FileSpec{Content: big}),
		file("/etc/big-other", targets.FileSpec{Content: big}),
		file("/etc/setuid", targets.FileSpec{}),
		file("/etc/binary", targets.FileSpec{}),
		file("/etc/missing", targets.FileSpec{}),
		file("/etc/notdir/below", targets.FileSpec{}),
		file("/srv/dir", targets.FileSpec{}),
		file("/srv/link", targets.FileSpec{}),
		file("/srv/fifo", targets.FileSpec{State: config.Absent}),
		file("relative", targets.FileSpec{}),
	}
	for _, p := range []string{"/srv/dir", "/srv/sticky", "/srv/missing", "/etc/app.conf", "/srv/dirlink"} {
		rs = append(rs, config.Resource{Kind: "directory", Name: p, Spec: &targets.DirectorySpec{}})
	}
	for _, p := range []string{"/srv/link", "/srv/dangling", "/srv/dirlink", "/srv/dir", "/srv/none", "/etc/notdir/x"} {
		rs = append(rs, config.Resource{Kind: "symlink", Name: p, Spec: &targets.SymlinkSpec{Target: "/x"}})
	}
	for _, n := range []string{"net.ipv4.ip_forward", "net.ipv4.tcp_rmem", "net/ipv4/ip_forward", "kernel.nonesuch", "bad name"} {
		rs = append(rs, config.Resource{Kind: "sysctl", Name: n, Spec: &targets.SysctlSpec{Value: "1"}})
	}
	return root, rs
}

// TestNativeObserveSandbox observes natively, on a sandbox root, every
// shape the path kinds and sysctl meet: each state is the one the
// sandbox holds, the two invalid resources are refused with their
// kind's own validation, and no shell runs at all.
func TestNativeObserveSandbox(t *testing.T) {
	need.Root(t, "a file of the sandbox is given to nobody")
	root, rs := sandbox(t)
	native := nativeLocal{&countingLocal{Transport: targets.NewLocal(root)}}
	got, err := targets.Observe(context.Background(), native, targets.Drivers(), rs)
	wantErr := "observe file:relative: file:relative: file path \"relative\" must be absolute\n" +
		"observe sysctl:bad name: sysctl:bad name: sysctl: \"bad name\" is not a valid kernel parameter name"
	if errText(err) != wantErr {
		t.Errorf("error:\n%v\nwant:\n%s", err, wantErr)
	}
	file := "present type mode owner group content"
	want := map[string]string{
		"file:/etc/app.conf":         file + ": true file 0640 nobody UNKNOWN port = 8080\n",
		"file:/etc/empty":            file + ": true file 0600 root root ",
		"file:/etc/big-same":         file + ": true file 0644 root root " + strings.Repeat("a line of a large file\n", 1000),
		"file:/etc/big-other":        file + ": true file 0644 root root " + strings.Repeat("a line of a large file\n", 1000) + "x",
		"file:/etc/setuid":           file + ": true file 4755 root root #!/bin/sh\n",
		"file:/etc/binary":           file + ": true file 0644 root root \x00\x01\xff\n\n",
		"file:/etc/missing":          file + ": false     ",
		"file:/etc/notdir/below":     file + ": false     ",
		"file:/srv/dir":              file + ": true directory 0755 root root ",
		"file:/srv/link":             file + ": true symlink 0777 root root ",
		"file:/srv/fifo":             file + ": true fifo 0600 root root ",
		"directory:/srv/dir":         file + ": true directory 0755 root root ",
		"directory:/srv/sticky":      file + ": true directory 1777 root root ",
		"directory:/srv/missing":     file + ": false     ",
		"directory:/etc/app.conf":    file + ": true file 0640 nobody UNKNOWN ",
		"directory:/srv/dirlink":     file + ": true symlink 0777 root root ",
		"symlink:/srv/link":          "present type target: true symlink /etc/app.conf",
		"symlink:/srv/dangling":      "present type target: true symlink /nowhere",
		"symlink:/srv/dirlink":       "present type target: true symlink /srv/dir",
		"symlink:/srv/dir":           "present type target: true other ",
		"symlink:/srv/none":          "present type target: false  ",
		"symlink:/etc/notdir/x":      "present type target: false  ",
		"sysctl:net.ipv4.ip_forward": "present value persisted: true 1 1",
		"sysctl:net.ipv4.tcp_rmem":   "present value persisted: true 4096 131072 6291456 ",
		"sysctl:net/ipv4/ip_forward": "present value persisted: true 1 1",
		"sysctl:kernel.nonesuch":     "present value persisted: false  ",
	}
	for _, r := range rs {
		w, ok := want[r.ID()]
		st, observed := got[r.ID()]
		if observed != ok {
			t.Errorf("%s: observed %v, want %v", r.ID(), observed, ok)
			continue
		}
		if !ok {
			continue
		}
		names, _, _ := strings.Cut(w, ":")
		line := names + ":"
		for _, f := range strings.Fields(names) {
			switch f {
			case "present":
				line += fmt.Sprintf(" %v", st.Present)
			case "content":
				line += " " + string(st.Content)
			default:
				line += " " + st.Fields[f]
			}
		}
		if line != w {
			t.Errorf("%s:\n got %q\nwant %q", r.ID(), line, w)
		}
	}
	if native.runs != 0 {
		t.Errorf("observing natively ran %d shell scripts, want 0", native.runs)
	}
}

// errText puts joined errors in a comparable order.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(sortedLines(err.Error()), "\n")
}

func sortedLines(s string) []string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return lines
}

// TestNativePackages asks this machine's package database about
// installed and unknown packages, plain and qualified with an
// architecture, in one native observation with no shell: what dpkg-query
// says of each (the shell probe's comparison is retired with the probe).
func TestNativePackages(t *testing.T) {
	ctx := context.Background()
	arch, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		t.Fatalf("this machine has no dpkg: %v", err)
	}
	native := strings.TrimSpace(string(arch))
	var rs []config.Resource
	for _, n := range []string{"bash", "coreutils", "dl-nonesuch", "libc6", "libc6:" + native, "bash:all", "Bash_Upper"} {
		rs = append(rs, config.Resource{Kind: "package", Name: n, Spec: &targets.PackageSpec{}})
	}
	tr := nativeLocal{&countingLocal{Transport: targets.NewLocal("")}}
	got, err := targets.Observe(ctx, tr, targets.Drivers(), rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bash", "coreutils", "libc6"} {
		v, err := exec.Command("dpkg-query", "-W", "-f=${Version}", n).Output()
		if err != nil {
			t.Fatal(err)
		}
		st := got["package:"+n]
		if !st.Present || st.Fields["manager"] != "apt" || st.Fields["status"] != "ii" || st.Fields["version"] != string(v) {
			t.Errorf("%s: %+v, want installed at %s", n, st, v)
		}
	}
	if q := got["package:libc6:"+native]; !reflect.DeepEqual(q, got["package:libc6"]) {
		t.Errorf("libc6:%s: %+v, want what libc6 is: %+v", native, q, got["package:libc6"])
	}
	for _, n := range []string{"dl-nonesuch", "bash:all", "Bash_Upper"} {
		if st := got["package:"+n]; st.Present || st.Fields["manager"] != "apt" || st.Fields["version"] != "" {
			t.Errorf("%s: %+v, want not installed", n, st)
		}
	}
	if tr.runs != 0 {
		t.Errorf("the native path ran %d shell scripts", tr.runs)
	}
}

// TestNativeAccounts observes this machine's users and groups natively,
// from the account files with no shell, and checks them against getent
// (the shell probe's comparison is retired with the probe).
func TestNativeAccounts(t *testing.T) {
	ctx := context.Background()
	var rs []config.Resource
	for _, n := range []string{"root", "daemon", "nobody", "dl-nonesuch"} {
		rs = append(rs, config.Resource{Kind: "user", Name: n, Spec: &targets.UserSpec{}})
	}
	for _, n := range []string{"root", "adm", "nogroup", "users", "dl-nonesuch"} {
		rs = append(rs, config.Resource{Kind: "group", Name: n, Spec: &targets.GroupSpec{}})
	}
	native := nativeLocal{&countingLocal{Transport: targets.NewLocal("")}}
	got, err := targets.Observe(ctx, native, targets.Drivers(), rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		out, err := exec.Command("getent", map[string]string{"user": "passwd", "group": "group"}[r.Kind], r.Name).Output()
		st := got[r.ID()]
		if r.Name == "dl-nonesuch" {
			if err == nil || st.Present {
				t.Errorf("%s: %+v (getent %q), want absent", r.ID(), st, out)
			}
			continue
		}
		f := strings.Split(strings.TrimSpace(string(out)), ":")
		switch {
		case err != nil:
			t.Fatalf("getent %s: %v", r.ID(), err)
		case r.Kind == "user" && (!st.Present || st.Fields["uid"] != f[2] || st.Fields["gid"] != f[3] || st.Fields["home"] != f[5] || st.Fields["shell"] != f[6]):
			t.Errorf("%s: %+v, getent says %q", r.ID(), st, out)
		case r.Kind == "group" && (!st.Present || st.Fields["gid"] != f[2]):
			t.Errorf("%s: %+v, getent says %q", r.ID(), st, out)
		}
	}
	if got["user:root"].Fields["primary"] != "root" {
		t.Errorf("root's primary group: %+v", got["user:root"])
	}
	if native.runs != 0 {
		t.Errorf("the native path ran %d shell scripts", native.runs)
	}
}
