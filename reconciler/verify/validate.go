package verify

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/driftless/driftless/config"
)

// Each check kind's own validation: what config's loader refuses at load
// (on the values that are not templates, and on the others once rendered
// for each host) and what the runner refuses before an attempt. A problem's
// key is the check's key holding the wrong value.

// problem is one config.Problem of key.
func problem(key, format string, args ...any) config.Problem {
	return config.Problem{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// validateHTTP: an http or https URL, an HTTP status, a regular expression.
func validateHTTP(c config.Check) []config.Problem {
	var ps []config.Problem
	if err := config.CheckURL(c.HTTP, "http", "https"); err != nil {
		ps = append(ps, problem("http", "http: %v", err))
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		ps = append(ps, problem("expect_status", "expect_status: %d is not an HTTP status", c.ExpectStatus))
	}
	if c.ExpectBody != "" {
		if _, err := regexp.Compile(c.ExpectBody); err != nil {
			ps = append(ps, problem("expect_body", "expect_body: %v", err))
		}
	}
	return ps
}

// validateTCP: a host:port to connect to.
func validateTCP(c config.Check) []config.Problem {
	if err := config.CheckDialAddress(c.TCP); err != nil {
		return []config.Problem{problem("tcp", "tcp: %v", err)}
	}
	return nil
}

// validateOn: where a command or junit check runs.
func validateOn(c config.Check) []config.Problem {
	if c.On != "" && c.On != "host" && c.On != "local" {
		return []config.Problem{problem("on", "on: %q is not one of host, local", c.On)}
	}
	return nil
}

// validateCommand: a command, and where it runs.
func validateCommand(c config.Check) []config.Problem {
	var ps []config.Problem
	if strings.TrimSpace(c.Command) == "" {
		ps = append(ps, problem("command", "command: the command is empty"))
	}
	return append(ps, validateOn(c)...)
}

// validateJUnit: a test command, an absolute report path, a bound.
func validateJUnit(c config.Check) []config.Problem {
	var ps []config.Problem
	if strings.TrimSpace(c.JUnit) == "" {
		ps = append(ps, problem("junit", "junit: the test command is empty"))
	}
	if c.Report != "" && !path.IsAbs(c.Report) {
		ps = append(ps, problem("report", "report: %q is not an absolute path", c.Report))
	}
	if c.MaxFailures < 0 {
		ps = append(ps, problem("max_failures", "max_failures: must not be negative"))
	}
	return append(ps, validateOn(c)...)
}

// promOps are the comparisons of a prometheus check ("" is ">").
var promOps = []string{"", "<", "<=", ">", ">=", "==", "!="}

// validatePrometheus: a query, a server URL, an operator.
func validatePrometheus(c config.Check) []config.Problem {
	var ps []config.Problem
	if strings.TrimSpace(c.Prometheus) == "" {
		ps = append(ps, problem("prometheus", "prometheus: the query is empty"))
	}
	if c.Server == "" {
		ps = append(ps, problem("", "a prometheus check needs server (the Prometheus base URL)"))
	} else if err := config.CheckURL(c.Server, "http", "https"); err != nil {
		ps = append(ps, problem("server", "server: %v", err))
	}
	if !slices.Contains(promOps, c.Op) {
		ps = append(ps, problem("op", "op: %q is not one of <, <=, >, >=, ==, !=", c.Op))
	}
	return ps
}
