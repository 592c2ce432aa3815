// Package agent is driftless on the host: the daemon's own binary, run as
// `driftless agent` over an SSH session, observing resources natively in
// one process instead of starting processes per resource. It speaks a
// small versioned request/response protocol on its standard input and
// output, one JSON object per line, one request at a time, and listens on
// nothing else: it serves only the session that started it.
//
// The daemon copies the binary to the host once per version, under a name
// that is its SHA-256 (Deploy), checks that hash before every start, and
// keeps one agent per host connection across passes (Client, Transport).
// The local transport runs the same Observe in the daemon's process.
package agent

import (
	"github.com/driftless/driftless/targets"
)

// Protocol is the version of the protocol. A daemon talks only to an agent
// of its own protocol version; the agent binary is content-addressed, so a
// daemon of another version copies and starts its own agent instead.
// Raise it with any change to the requests or answers.
//
// 3 added apply, 4 the command and artifact queries, 5 an artifact's
// archive sent after an apply request's line (Request.Archives), 6 the
// fencing token of write and apply requests (Request.Fence): an agent of
// 5 would ignore it and write unchecked; 7 the fence operation (OpFence).
const Protocol = 7

// The operations of a request.
const (
	// OpHello asks the agent who it is (Hello).
	OpHello = "hello"
	// OpObserve observes a batch of resources (Request.Queries).
	OpObserve = "observe"
	// OpWrite writes files in order, as targets.Transport.WriteFiles does
	// (Request.Writes): each to a temporary file beside it, given its mode
	// and owner, synced, then renamed in place; stops at the first failure.
	OpWrite = "write"
	// OpCheck runs a command check's script on the host (Request.Check):
	// sh -c in its own process group, killed with the group when the
	// check's time is up; the answer is its exit status and the end of
	// its stderr (Response.Check).
	OpCheck = "check"
	// OpApply applies, restores or refreshes resources in order
	// (Request.Steps), as targets.NativeApplier does: the agent validates
	// each step's resource with its kind's own Validate just before it
	// runs and refuses an invalid one, touching nothing of it; it stops
	// at the first failure. The answer is how many steps are done
	// (Response.Applied) and why the next one failed (Response.ApplyErr).
	// An artifact's step may carry its archive (Request.Archives).
	OpApply = "apply"
	// OpFence records a replica's fence event on the host, in cluster
	// mode (Request.Mark), as targets.MarkHostFence does: under the
	// host's fence lock, a begin is refused when the host saw a higher
	// token (Response.Fenced, FenceErr), otherwise it raises the host's
	// token and opens the write record; an end closes it.
	OpFence = "fence"
)

// Request is one line the daemon sends.
type Request struct {
	ID      uint64          `json:"id"`
	Op      string          `json:"op"`
	Queries []targets.Query `json:"queries,omitempty"`
	Writes  []Write         `json:"writes,omitempty"`
	Check   *Check          `json:"check,omitempty"`
	Steps   []targets.Step  `json:"steps,omitempty"`
	// Archives are the sizes of the steps' archives (targets.Step.Archive;
	// 0 for a step without one), one per step or none. Their bytes follow
	// the request line on the session, back to back in the order of the
	// steps, raw: the agent keeps them in nameless files beside its binary
	// (not in memory) while the request runs, and the step checks its
	// archive's sha256 against the declared one before unpacking it.
	Archives []int64 `json:"archives,omitempty"`
	// TimeoutMS bounds an apply request on the host, in milliseconds (the
	// daemon's deadline for it; 0 is none): a step still running then is
	// stopped (a command's process group killed) and fails.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Fence is the fencing token of a write or apply request made in
	// cluster mode (targets.WithHostFence): the agent refuses the whole
	// request, nothing written, when the host's fence file for the
	// environment holds a higher token, and holds the host's fence lock
	// while the request runs. Nil in a daemon alone.
	Fence *targets.HostFence `json:"fence,omitempty"`
	// Mark is the event of a fence request.
	Mark *targets.FenceMark `json:"mark,omitempty"`
}

// Check is a command check to run on the host.
type Check struct {
	Script string `json:"script"`
	// TimeoutMS is how long the check may run, in milliseconds (the
	// daemon's deadline for it); 0 is no limit.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// CheckResult is how a command check ended.
type CheckResult struct {
	Exit int `json:"exit"`
	// Stderr is the end of its standard error (at most maxCheckStderr
	// bytes); its standard output is not kept.
	Stderr []byte `json:"stderr,omitempty"`
	// Err is why it could not run or did not end in time.
	Err string `json:"err,omitempty"`
}

// Write is one file of a write request.
type Write struct {
	Path string `json:"path"`
	Data []byte `json:"data"`
	// Mode is Go's fs.FileMode: permission bits, setuid, setgid, sticky.
	Mode  uint32 `json:"mode"`
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
}

// Response is the agent's one line for a request, with the request's ID.
type Response struct {
	ID uint64 `json:"id"`
	// Err is set when the request itself failed (an unknown operation);
	// a resource that could not be observed is an Answer's Err.
	Err     string           `json:"err,omitempty"`
	Hello   *Hello           `json:"hello,omitempty"`
	Answers []targets.Answer `json:"answers,omitempty"`
	// Written is how many files of a write request are in place, and
	// WriteErr why the next one is not.
	Written  int          `json:"written,omitempty"`
	WriteErr string       `json:"write_err,omitempty"`
	Check    *CheckResult `json:"check,omitempty"`
	// Applied is how many steps of an apply request are done, and
	// ApplyErr why the next one is not (or why the request was refused).
	Applied  int    `json:"applied,omitempty"`
	ApplyErr string `json:"apply_err,omitempty"`
	// FenceErr is why a fence request failed.
	FenceErr string `json:"fence_err,omitempty"`
	// Fenced says that WriteErr, ApplyErr or FenceErr is the host's
	// refusal of the request's fencing token (targets.ErrHostFenced).
	Fenced bool `json:"fenced,omitempty"`
}

// Hello is what an agent says about itself.
type Hello struct {
	Protocol int    `json:"protocol"`
	Version  string `json:"version"`
	// Sum is the SHA-256 of the running binary, hex.
	Sum  string `json:"sum"`
	OS   string `json:"os"`
	Arch string `json:"arch"`
	UID  int    `json:"uid"`
}
