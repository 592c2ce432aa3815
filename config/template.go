package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// The bounds of one template's evaluation, by default.
const (
	DefaultTemplateMaxBytes = 32 << 20
	DefaultTemplateTimeout  = 5 * time.Second
)

// tickFunc is the function the loader inserts at the start of every range
// body and every template definition. A template that loops or recurses
// without writing anything still passes through it, so it meets its time
// limit; text/template itself cannot be interrupted.
const tickFunc = "driftless_tick"

// parseTemplate parses a template of the repository and instruments it
// for its bounds (see tickFunc). Nothing but text/template's built-in
// functions is available to it.
func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").
		Funcs(template.FuncMap{tickFunc: func(int) (string, error) { return "", nil }}).Parse(text)
	if err != nil {
		return nil, err
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Root == nil {
			continue
		}
		instrument(tt.Root)
		tt.Root.Nodes = append([]parse.Node{tickNode(tt.Root.Pos)}, tt.Root.Nodes...)
	}
	return t, nil
}

// instrument puts a tick at the start of every range body under n.
func instrument(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			instrument(c)
		}
	case *parse.RangeNode:
		instrument(n.List)
		instrument(n.ElseList)
		if n.List != nil {
			n.List.Nodes = append([]parse.Node{tickNode(n.Pos)}, n.List.Nodes...)
		}
	case *parse.IfNode:
		instrument(n.List)
		instrument(n.ElseList)
	case *parse.WithNode:
		instrument(n.List)
		instrument(n.ElseList)
	}
}

// tickNode is {{driftless_tick POS}} placed at pos: errors it returns are
// reported at the position of the range or definition it guards.
func tickNode(pos parse.Pos) parse.Node {
	arg := &parse.NumberNode{NodeType: parse.NodeNumber, Pos: pos, IsInt: true, Int64: int64(pos), Text: strconv.Itoa(int(pos))}
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos,
		Args: []parse.Node{(&parse.IdentifierNode{NodeType: parse.NodeIdentifier, Ident: tickFunc}).SetPos(pos), arg}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{cmd}}}
}

// budget bounds one evaluation: it is the writer the template writes to,
// and the tick function that checks the clock.
type budget struct {
	b        strings.Builder
	max      int
	timeout  time.Duration
	deadline time.Time
	// at is the position (byte offset) of the last tick, where a write
	// past the size limit is reported.
	at int
}

// errBudget is a template that went past one of its bounds.
type errBudget struct {
	msg string
	at  int
}

func (e *errBudget) Error() string { return e.msg }

// Write keeps p, or fails once the output would pass the size limit.
func (b *budget) Write(p []byte) (int, error) {
	if b.b.Len()+len(p) > b.max {
		return 0, &errBudget{msg: fmt.Sprintf("the output is larger than %d bytes (the template size limit)", b.max), at: b.at}
	}
	return b.b.Write(p)
}

// tick fails once the evaluation ran past its time limit.
func (b *budget) tick(at int) (string, error) {
	b.at = at
	if time.Now().After(b.deadline) {
		return "", &errBudget{msg: fmt.Sprintf("the evaluation took longer than %s (the template time limit)", b.timeout), at: at}
	}
	return "", nil
}

// render executes a parsed template with the data within the loader's
// bounds. A template is only ever executed by the loader that parsed it,
// one host after the other, so setting its tick function per run is safe.
func (l *loader) render(t *template.Template, data templateData) (string, error) {
	b := &budget{max: l.opts.TemplateMaxBytes, timeout: l.opts.TemplateTimeout}
	if b.max <= 0 {
		b.max = DefaultTemplateMaxBytes
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTemplateTimeout
	}
	b.deadline = time.Now().Add(b.timeout)
	t.Funcs(template.FuncMap{tickFunc: b.tick})
	if err := t.Execute(b, data); err != nil {
		return "", err
	}
	return b.b.String(), nil
}

// budgetErrPos is the position of a template that went past a bound, and
// its message; ok is false for other errors.
func budgetErrPos(t *template.Template, file string, err error) (Position, string, bool) {
	var be *errBudget
	if !errors.As(err, &be) {
		return Position{}, "", false
	}
	pos := Position{File: file, Line: 1, Column: 1}
	if be.at > 0 && t.Tree != nil {
		if loc, _ := t.ErrorContext(tickNode(parse.Pos(be.at))); loc != "" {
			p, _ := templateErrPos(file, fmt.Errorf("template: %s: x", loc))
			pos = p
		}
	}
	return pos, be.msg, true
}
