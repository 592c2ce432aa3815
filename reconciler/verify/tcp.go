package verify

import (
	"context"
	"fmt"
	"net"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

// tcpCheck passes when a TCP connection to c.TCP ("host:port") opens
// within the attempt's timeout. The connection is closed at once.
func tcpCheck(_ *Runner, c config.Check, _ *config.Host, _ targets.Transport, _ *Result) (attempt, error) {
	return func(ctx context.Context) (string, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.TCP)
		if err != nil {
			return "", fmt.Errorf("connect to %s: expected an open port: %w", c.TCP, err)
		}
		remote := conn.RemoteAddr().String()
		// The port answered, which is all this check asks; an error closing
		// a connection nothing was written on says nothing about the service.
		_ = conn.Close()
		return fmt.Sprintf("connected to %s (%s)", c.TCP, remote), nil
	}, nil
}
