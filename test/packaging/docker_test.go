package packaging

import (
	"context"
	"crypto/rand"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
)

// TestDockerBuild builds the image with a real Docker engine and runs its
// binary. Without an engine answering `docker info` it skips: the build
// steps themselves are still checked by TestBuiltBinary/static.
func TestDockerBuild(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		need.Optional(t, "no docker client installed: the image is not built (TestBuiltBinary/static checks its build steps)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	info, err := exec.CommandContext(ctx, docker, "info").CombinedOutput()
	cancel()
	if err != nil {
		need.Optional(t, "no Docker engine answers `docker info` (%v): the image is not built (TestBuiltBinary/static checks its build steps)\n%s", err, lastLines(string(info), 3))
	}

	tag := "driftless-packaging-test:" + strings.ToLower(rand.Text()[:12])
	ctx, cancel = context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, docker, "build", "--build-arg", "VERSION="+testVersion, "-t", tag, repoRoot)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, lastLines(string(out), 40))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, docker, "rmi", "-f", tag).CombinedOutput(); err != nil {
			t.Logf("docker rmi %s: %v\n%s", tag, err, out)
		}
	})
	out, err := exec.CommandContext(ctx, docker, "run", "--rm", tag, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s version: %v\n%s", tag, err, out)
	}
	if got, want := string(out), "driftless "+testVersion+"\n"; got != want {
		t.Errorf("the image's binary printed %q, want %q", got, want)
	}
	// The image must not run as root.
	user, err := exec.CommandContext(ctx, docker, "image", "inspect", "-f", "{{.Config.User}}", tag).Output()
	if err != nil {
		t.Fatalf("docker image inspect: %v", err)
	}
	if u := strings.TrimSpace(string(user)); u == "" || u == "0" || strings.HasPrefix(u, "0:") || u == "root" {
		t.Errorf("the image runs as user %q, want an unprivileged one", u)
	}
}

// lastLines keeps the end of a long output, where the error is.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
