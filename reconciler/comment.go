package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// PullHeads finds the head commit of the pull request a comment is about
// (sources.Git implements it); ok is false for another repository.
type PullHeads interface {
	PullHead(ctx context.Context, ev sources.Event) (commit string, ok bool, err error)
}

// MergeChecker says whether a revision's commit brings exactly head: head
// itself, or a merge commit of head onto an unchanged base (sources.Git
// implements it). Without one, only the approved commit itself counts.
type MergeChecker interface {
	MergedFrom(ctx context.Context, rev sources.Revision, head string) (bool, error)
}

// CommentApprovals is a webhook target: a new comment holding a line
// `/driftless approve ENV [COMMIT]` or `/driftless reject ENV [COMMIT]` on
// a pull request, by a login ENV lists in approval.approvers, approves or
// rejects the pull request's head commit at the time of the comment for
// ENV; a COMMIT named must be that head. A preview environment's approval
// must name it (DecideByComment). Other logins are refused (logged,
// nothing recorded). Signatures and tokens were checked by the webhook
// handler.
type CommentApprovals struct {
	Reconciler *Reconciler
	Heads      []PullHeads
	// Timeout bounds reading the pull request's head (0: 20 seconds).
	Timeout time.Duration
}

// Notify handles a comment event; it reports whether it acted on it.
func (c *CommentApprovals) Notify(ev sources.Event) bool {
	if ev.Kind != "comment" || ev.Action != "created" {
		return false
	}
	cmds := commentCommands(ev.Comment)
	if len(cmds) == 0 {
		return false
	}
	r := c.Reconciler
	log := r.log.With().Str("provider", ev.Provider).Str("repository", ev.Repository).Int("pull_request", ev.PullRequest).Str("by", ev.Login).Logger()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	head := ""
	for _, h := range c.Heads {
		commit, ok, err := h.PullHead(ctx, ev)
		if !ok {
			continue
		}
		if err != nil {
			log.Error().Err(err).Msg("comment decision: cannot read the pull request's head")
			return true
		}
		head = commit
		break
	}
	if head == "" {
		log.Warn().Msg("comment decision: no source follows the repository")
		return false
	}
	for _, cmd := range cmds {
		err := r.DecideByComment(cmd.env, head, cmd.commit, cmd.approve, ev)
		if errors.Is(err, ErrNotOwner) {
			// In a cluster every replica sees the comment; its owner decides.
			continue
		}
		if err != nil {
			msg := "comment approval refused"
			if !cmd.approve {
				msg = "comment rejection refused"
			}
			log.Warn().Str("environment", cmd.env).Str("revision", kit.Short(head)).Err(err).Msg(msg)
		}
	}
	return true
}

// commentCommand is one `/driftless approve|reject ENV [COMMIT]` line of
// a comment.
type commentCommand struct {
	env, commit string
	approve     bool
}

// commentCommands returns the commands of a comment, in order.
func commentCommands(comment string) []commentCommand {
	var out []commentCommand
	for _, line := range strings.Split(comment, "\n") {
		f := strings.Fields(line)
		if (len(f) == 3 || len(f) == 4) && f[0] == "/driftless" && (f[1] == "approve" || f[1] == "reject") {
			c := commentCommand{env: f[2], approve: f[1] == "approve"}
			if len(f) == 4 {
				c.commit = f[3]
			}
			out = append(out, c)
		}
	}
	return out
}

// DecideByComment records that ev's author approved (or rejected) commit,
// a pull request's head, for env, when env requires approval and lists
// the author among its approvers. named is the commit the comment names
// ("" for none); when given it must be (a prefix of at least 7 characters
// of) commit. A preview environment applies the head itself, which its
// author may change between the approver reading the plan and the comment
// arriving, so its approval must name the commit. The commit need not
// wait at the gate yet: the decision counts when it (or its merge)
// arrives there. A rejection is final: a commit once rejected is not
// approved again.
func (r *Reconciler) DecideByComment(env, commit, named string, approve bool, ev sources.Event) error {
	if _, err := r.known(env); err != nil {
		return err
	}
	c := &commentDecision{commit: commit, named: named, approve: approve, ev: ev}
	return r.call(context.Background(), env, request{kind: reqComment, comment: c}).err
}

// commentDecision is a decision taken by a pull request comment.
type commentDecision struct {
	commit, named string
	approve       bool
	ev            sources.Event
}

// decideByComment is DecideByComment on the environment's worker.
func (r *Reconciler) decideByComment(st *envState, c *commentDecision) error {
	env, commit, named, approve, ev := st.name(), c.commit, c.named, c.approve, c.ev
	pol := st.policy()
	prev := st.rec.Decision(commit)
	elsewhere := previewCommentRefused(st.rec, ev)
	preview := st.rec.Preview != nil
	named = strings.ToLower(named)
	switch {
	case pol == nil:
		return fmt.Errorf("environment %s has no loaded configuration yet", env)
	case pol.Approval == nil || !pol.Approval.Required:
		return fmt.Errorf("environment %s requires no approval", env)
	case !containsFold(pol.Approval.Approvers, ev.Login):
		return fmt.Errorf("%s is not an approver of %s", ev.Login, env)
	case elsewhere != "":
		return errors.New(elsewhere)
	case named == "" && preview && approve:
		return fmt.Errorf("%s is a pull request's preview: name the commit approved (`/driftless approve %s %s`)", env, env, kit.Short(commit))
	case named != "" && (len(named) < 7 || !strings.HasPrefix(commit, named)):
		return fmt.Errorf("%s is not the pull request's head %s (a commit is named by 7 characters at least)", named, kit.Short(commit))
	case prev != nil && !prev.Approved:
		return fmt.Errorf("%s was rejected by %s at %s", kit.Short(commit), prev.By, prev.At.UTC().Format(time.RFC3339))
	}
	d := store.Decision{Environment: env, Commit: commit, Approved: approve, By: ev.Provider + ":" + ev.Login, Via: ev.Provider,
		PullRequest: ev.PullRequest, At: r.now()}
	rev := sources.Revision{Commit: commit}
	if g := st.rec.Gate; g != nil && g.Revision.Commit == commit {
		rev = g.Revision
	}
	r.record(st, d, rev)
	return nil
}

// mergedDecision finds a pull request decision whose commit cand brings
// exactly (its merge onto an unchanged base): the newest approval, unless
// such a commit was rejected, which wins.
func (r *Reconciler) mergedDecision(ctx context.Context, rec store.EnvRecord, cand sources.Revision) *store.Decision {
	mc, ok := r.opts.Revisions.(MergeChecker)
	if !ok {
		return nil
	}
	var approval *store.Decision
	for i := len(rec.Decisions) - 1; i >= 0; i-- {
		d := rec.Decisions[i]
		if d.PullRequest == 0 || d.Approved && approval != nil {
			continue
		}
		merged, err := mc.MergedFrom(ctx, cand, d.Commit)
		if err != nil {
			r.log.Debug().Str("environment", rec.Name).Err(err).Msg("cannot compare a merge with an approved commit")
			continue
		}
		if merged && !d.Approved {
			return &d
		}
		if merged {
			approval = &d
		}
	}
	return approval
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
