package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"
)

// Read returns the secret's value: the file's content without its trailing
// newlines, or the environment variable. An empty or missing secret is an
// error. Errors name where the secret was looked for, never its value.
func (s Secret) Read() ([]byte, error) {
	switch {
	case s.File != "" && s.Env != "":
		return nil, errors.New("read secret: both file and env are set")
	case s.File != "":
		data, err := os.ReadFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("read secret from file %s: %w", s.File, err)
		}
		data = bytes.TrimRight(data, "\r\n")
		if len(data) == 0 {
			return nil, fmt.Errorf("read secret from file %s: the file is empty", s.File)
		}
		return data, nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("read secret from environment variable %s: not set", s.Env)
		}
		if v == "" {
			return nil, fmt.Errorf("read secret from environment variable %s: empty", s.Env)
		}
		return []byte(v), nil
	}
	return nil, errors.New("read secret: no file or env configured")
}

// String returns the duration as time.Duration prints it ("5m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration as "5m0s", so that JSON and YAML output
// reads the same way the configuration is written.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration such as "30s" or "5m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("parse duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}
