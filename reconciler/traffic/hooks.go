package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/redact"
	"github.com/driftless/driftless/targets"
)

// httpHooks POST the host to the out and in URLs; the balancer answers
// out once the host is drained.
type httpHooks struct {
	hooks  config.TrafficHooks
	client *http.Client
}

var _ Balancer = (*httpHooks)(nil)

func (k *httpHooks) Out(ctx context.Context, env string, h *config.Host) error {
	return k.post(ctx, k.hooks.Out, "out", env, h)
}

func (k *httpHooks) In(ctx context.Context, env string, h *config.Host) error {
	return k.post(ctx, k.hooks.In, "in", env, h)
}

func (k *httpHooks) post(ctx context.Context, url, action, env string, h *config.Host) error {
	body, err := json.Marshal(map[string]string{"environment": env, "host": h.Name, "address": h.Address, "action": action})
	if err != nil {
		return fmt.Errorf("encode traffic %s hook: %w", action, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("traffic %s hook %s: %w", action, redact.URL(url), err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("traffic %s hook: %s", action, redact.URL(err.Error()))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("traffic %s hook %s: status %d: %s", action, redact.URL(url), resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}

// commandHooks run the out and in commands on the daemon's machine.
type commandHooks struct {
	hooks config.TrafficHooks
}

var _ Balancer = (*commandHooks)(nil)

func (k *commandHooks) Out(ctx context.Context, env string, h *config.Host) error {
	return k.run(ctx, k.hooks.Out, "out", env, h)
}

func (k *commandHooks) In(ctx context.Context, env string, h *config.Host) error {
	return k.run(ctx, k.hooks.In, "in", env, h)
}

func (k *commandHooks) run(ctx context.Context, cmd, action, env string, h *config.Host) error {
	var script strings.Builder
	for _, kv := range [][2]string{{"DRIFTLESS_ENVIRONMENT", env}, {"DRIFTLESS_HOST", h.Name}, {"DRIFTLESS_ADDRESS", h.Address}, {"DRIFTLESS_TRAFFIC", action}} {
		fmt.Fprintf(&script, "%s=%s; export %s\n", kv[0], targets.ShellQuote(kv[1]), kv[0])
	}
	script.WriteString(cmd + "\n")
	local := targets.NewLocal("")
	defer local.Close()
	res, err := local.Run(ctx, script.String(), nil)
	if err != nil {
		return fmt.Errorf("traffic %s command: %w", action, err)
	}
	if res.Exit != 0 {
		return fmt.Errorf("traffic %s command: exit %d: %s", action, res.Exit, strings.TrimSpace(lastLine(res.Stderr)))
	}
	return nil
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
