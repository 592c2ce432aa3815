package sources

import (
	"fmt"
	"os"
	"strings"

	"github.com/driftless/driftless/config"
)

// GitCredentials are the secrets of a Git source, read from where the
// configuration points (files or environment variables).
type GitCredentials struct {
	// Username and Password are HTTP basic auth.
	Username string
	Password string
	// Token is an HTTPS access token, sent as the password of basic auth
	// (what GitHub, GitLab, Gitea and Bitbucket accept for Git over HTTPS).
	Token string
	// SSHKey is a PEM private key; SSHKeyPassphrase decrypts it when needed.
	SSHKey           []byte
	SSHKeyPassphrase string
}

// ResolveGitCredentials reads the secrets cfg refers to. getenv looks up
// environment variables (os.Getenv in the daemon). Errors name the secret's
// location, never its value.
func ResolveGitCredentials(cfg config.GitSource, getenv func(string) string) (GitCredentials, error) {
	creds := GitCredentials{Username: cfg.Username}
	var err error
	if creds.Password, err = readSecret(cfg.Password, getenv); err != nil {
		return creds, fmt.Errorf("read git password: %w", err)
	}
	if creds.Token, err = readSecret(cfg.Token, getenv); err != nil {
		return creds, fmt.Errorf("read git token: %w", err)
	}
	key, err := readSecret(cfg.SSHKey, getenv)
	if err != nil {
		return creds, fmt.Errorf("read git ssh key: %w", err)
	}
	if key != "" {
		creds.SSHKey = []byte(key)
	}
	return creds, nil
}

func readSecret(s config.Secret, getenv func(string) string) (string, error) {
	switch {
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("read secret file %s: %w", s.File, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case s.Env != "":
		v := getenv(s.Env)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty or unset", s.Env)
		}
		return v, nil
	}
	return "", nil
}
