package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/driftless/driftless/agent"
)

// A line that is not a request puts the session out of step (what follows
// it may be an archive's bytes): the agent answers it and ends the
// session, and reads nothing after it as a request.
func TestServeEndsOnUndecodableLine(t *testing.T) {
	in := strings.NewReader("{not json\n" + `{"id":7,"op":"hello"}` + "\n")
	var out bytes.Buffer
	err := agent.Serve(context.Background(), in, &out, "test")
	if err == nil || !strings.Contains(err.Error(), "read request") {
		t.Fatalf("Serve = %v, want the session ended on the undecodable line", err)
	}
	dec := json.NewDecoder(&out)
	var answers []agent.Response
	for dec.More() {
		var r agent.Response
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("decode answer: %v", err)
		}
		answers = append(answers, r)
	}
	if len(answers) != 1 || answers[0].Err == "" {
		t.Fatalf("answers = %+v, want one error for the bad line", answers)
	}
	for _, a := range answers {
		if a.ID == 7 || a.Hello != nil {
			t.Fatalf("the line after the undecodable one was read as a request: %+v", a)
		}
	}
}

// servedClient is a client of an agent served in this process over pipes,
// as the daemon's client speaks to `driftless agent` over SSH. The agent
// must end without error when the test closes the client.
func servedClient(t *testing.T) *agent.Client {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		err := agent.Serve(context.Background(), inR, outW, "test")
		outW.Close()
		served <- err
	}()
	c, err := agent.NewClient(context.Background(), inW, outR, inW)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := <-served; err != nil {
			t.Errorf("the agent ended with %v", err)
		}
	})
	return c
}
