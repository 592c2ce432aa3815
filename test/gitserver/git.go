package gitserver

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// gitEnv is a clean environment for git: no user or system configuration,
// a fixed identity, never a prompt for credentials.
func gitEnv(home string) []string {
	env := []string{
		"HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=driftless test",
		"GIT_AUTHOR_EMAIL=test@driftless.invalid",
		"GIT_COMMITTER_NAME=driftless test",
		"GIT_COMMITTER_EMAIL=test@driftless.invalid",
		"LC_ALL=C",
	}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	}
	return env
}

var shaPattern = regexp.MustCompile(`^[0-9a-f]{40}$`)

// run runs git with args in dir and returns its trimmed standard output;
// it fails the test on any error, with git's own message.
func run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Git(dir, args...)
	if err != nil {
		t.Fatalf("gitserver: %v", err)
	}
	return out
}

// Git runs the git command line with args in dir, in the same clean
// environment the server uses, and returns its trimmed standard output.
func Git(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(os.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}
