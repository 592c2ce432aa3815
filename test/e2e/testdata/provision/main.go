// Command provision is the preview provisioner of the end-to-end test: a
// preview template's `provision: {create, destroy}` runs it as
//
//	provision create SOCKET    # prints the new hosts as inventory JSON
//	provision destroy SOCKET   # reads what create printed on stdin
//
// It asks the test, listening on the Unix socket SOCKET, to start or stop
// test hosts with the project's harness (test/hosts), which lives as long
// as the test does. The DRIFTLESS_* variables the daemon sets are passed on.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "create" && os.Args[1] != "destroy") {
		fmt.Fprintln(os.Stderr, "usage: provision create|destroy SOCKET")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

func run(verb, socket string) error {
	var body []byte
	if verb == "destroy" {
		var err error
		if body, err = io.ReadAll(os.Stdin); err != nil {
			return fmt.Errorf("read the hosts: %w", err)
		}
	}
	q := url.Values{}
	for _, k := range []string{"DRIFTLESS_ENVIRONMENT", "DRIFTLESS_TEMPLATE", "DRIFTLESS_PULL_REQUEST", "DRIFTLESS_COMMIT"} {
		q.Set(k, os.Getenv(k))
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://test/"+verb+"?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", verb, resp.Status, out)
	}
	_, err = os.Stdout.Write(out)
	return err
}
