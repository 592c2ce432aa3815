package scale

// The pre-agent baseline: the shell probes driftless observed hosts with
// before the agent became the one way to reach a host. The script text is
// copied from the kinds' Probe methods and Observe's probeScript at commit
// 8a05bda (targets/observe.go, drivers.go, file.go, package.go,
// service.go), which the agent's issue then deleted, so that
// BenchmarkDriftScanAgent can still measure "today's shell-probe scan" on
// the same hosts in the same run. It is a measured baseline only: nothing
// but that benchmark runs it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

// oldShq quotes s for the shell, as targets' shq did.
func oldShq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// oldStatProbe is statProbe: the stat line of p when anything is there.
func oldStatProbe(p string) string {
	return "if [ -L " + p + " ] || [ -e " + p + " ]; then stat -c '%a %u %g %U %G %F' -- " + p + "; fi"
}

// oldFileProbe is FileDriver.Probe for a declared content under 16 KiB
// (every file of the scale mix): the stat line, then the content in base64.
func oldFileProbe(path string) string {
	p := oldShq(path)
	return oldStatProbe(p) + "\nif [ -f " + p + " ] && [ ! -L " + p + " ]; then base64 -w0 -- " + p + "; fi"
}

// oldPackageProbe is PackageDriver.Probe on a real host.
func oldPackageProbe(name string) string {
	n := oldShq(name)
	return `if command -v dpkg-query >/dev/null 2>&1; then echo manager=apt
dpkg-query -W -f='status=${db:Status-Abbrev}\nversion=${Version}\n' -- ` + n + ` 2>/dev/null || true
elif command -v rpm >/dev/null 2>&1; then echo manager=dnf
rpm -q --qf 'status=ii\nversion=%{EPOCH}:%{VERSION}-%{RELEASE}\n' -- ` + n + ` 2>/dev/null | grep -v 'is not installed' || true
else echo "neither dpkg nor rpm is installed on this host" >&2; false; fi`
}

// oldServiceProbe is ServiceDriver.Probe on a real host.
func oldServiceProbe(name string) string {
	u := name + ".service"
	p := oldShq("/etc/systemd/system/" + u)
	return `__svc_ok=1
if [ -d /run/systemd/system ]; then systemctl show -p LoadState -p ActiveState -p UnitFileState -- ` + oldShq(u) + `
else echo "systemd is not running on this host" >&2; __svc_ok=0; fi
echo --driftless-unit-file--
if [ -f ` + p + ` ]; then echo unitfile=1; cat -- ` + p + `; fi
[ "$__svc_ok" = 1 ]
`
}

// oldProbeScript is Observe's probeScript: every probe in a brace group
// framed by nonce markers, its stderr sent back in base64.
func oldProbeScript(nonce string, rs []config.Resource) string {
	var b strings.Builder
	b.WriteString("__dl_err=$(mktemp) || exit 111\ntrap 'rm -f \"$__dl_err\"' EXIT\n")
	for i, r := range rs {
		idx := strconv.Itoa(i)
		b.WriteString("echo '" + nonce + " B " + idx + "'\n{ :\n")
		switch r.Kind {
		case "file":
			b.WriteString(oldFileProbe(r.Name))
		case "package":
			b.WriteString(oldPackageProbe(r.Name))
		case "service":
			b.WriteString(oldServiceProbe(r.Name))
		}
		b.WriteString("\n} </dev/null 2>\"$__dl_err\"\n__dl_s=$?\n")
		b.WriteString("printf '\\n%s %s ' '" + nonce + " E " + idx + "' \"$__dl_s\"\n")
		b.WriteString("if [ -s \"$__dl_err\" ]; then base64 -w0 \"$__dl_err\"; fi\necho\n")
	}
	return b.String()
}

// oldFrame cuts probe i's output and exit status from the start of out,
// as Observe's nextFrame did.
func oldFrame(out []byte, nonce string, i int) (body []byte, status int, rest []byte, ok bool) {
	idx := strconv.Itoa(i)
	begin := []byte(nonce + " B " + idx + "\n")
	start := bytes.Index(out, begin)
	if start < 0 {
		return nil, 0, nil, false
	}
	out = out[start+len(begin):]
	end := []byte("\n" + nonce + " E " + idx + " ")
	stop := bytes.Index(out, end)
	if stop < 0 {
		return nil, 0, nil, false
	}
	body, out = out[:stop], out[stop+len(end):]
	line, rest, found := bytes.Cut(out, []byte("\n"))
	if !found {
		return nil, 0, nil, false
	}
	statusText, _, _ := bytes.Cut(line, []byte(" "))
	status, err := strconv.Atoi(string(statusText))
	return body, status, rest, err == nil
}

// oldScanHost runs the pre-agent observation of rs on one host in one
// call and reads it as that code did, far enough to tell the drift: it
// returns how many resources drifted (a file whose stat line or content
// differs from its declaration, or that is missing; a package not
// installed) and the IDs of those whose probe failed (the services on
// hosts without systemd).
func oldScanHost(ctx context.Context, t targets.Transport, rs []config.Resource) (drifted int, unknown []string, err error) {
	var random [16]byte
	if _, err := rand.Read(random[:]); err != nil {
		return 0, nil, err
	}
	nonce := "DRIFTLESS-" + hex.EncodeToString(random[:])
	res, err := t.Run(ctx, oldProbeScript(nonce, rs), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("observe %d resources: %w", len(rs), err)
	}
	out := res.Stdout
	for i, r := range rs {
		body, status, rest, ok := oldFrame(out, nonce, i)
		if !ok {
			return 0, nil, fmt.Errorf("no probe output for %s (host script exited %d: %s)", r.ID(), res.Exit, res.Stderr)
		}
		out = rest
		if status != 0 {
			unknown = append(unknown, r.ID())
			continue
		}
		switch spec := r.Spec.(type) {
		case *targets.FileSpec:
			line, content, _ := strings.Cut(string(body), "\n")
			data, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(content))
			if line == "" || derr != nil || string(data) != spec.Content ||
				line != strings.TrimPrefix(spec.Mode, "0")+" 0 0 "+spec.Owner+" "+spec.Group+" regular file" {
				drifted++
			}
		case *targets.PackageSpec:
			if !strings.Contains(string(body), "status=ii") {
				drifted++
			}
		}
	}
	return drifted, unknown, nil
}
