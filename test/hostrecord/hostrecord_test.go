package hostrecord

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCheck: records of one writer after another pass; an overlap, a
// token going down and an end without begin fail; a killed replica's
// open writes end when it died; a stopped replica's are superseded by a
// higher token begun while it was stopped, and its late end is accepted
// only as the first thing after it ran again, with no other writes open.
func TestCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	line := func(what string, s int, tok int, replica string) string {
		return fmt.Sprintf("%s %d %d apply %q\n", what, t0.Add(time.Duration(s)*time.Second).UnixNano(), tok, replica)
	}
	for _, c := range []struct {
		name, record string
		away         Away
		fail         string
	}{
		{"one after the other", line("begin", 1, 5, "a") + line("end", 2, 5, "a") + line("begin", 3, 9, "b") + line("end", 4, 9, "b"), nil, ""},
		{"overlap", line("begin", 1, 5, "a") + line("begin", 3, 9, "b") + line("end", 4, 5, "a"), nil, "two replicas wrote at once"},
		{"killed before the next began", line("begin", 1, 5, "a") + line("begin", 3, 9, "b") + line("end", 4, 9, "b"),
			Away{"a": {{From: t0.Add(2 * time.Second)}}}, ""},
		{"killed after the next began", line("begin", 1, 5, "a") + line("begin", 3, 9, "b"),
			Away{"a": {{From: t0.Add(4 * time.Second)}}}, "two replicas wrote at once"},
		{"stopped, superseded, ends late", line("begin", 1, 5, "a") + line("begin", 3, 9, "b") + line("end", 4, 9, "b") + line("end", 6, 5, "a"),
			Away{"a": {{From: t0.Add(2 * time.Second), To: t0.Add(5 * time.Second)}}}, ""},
		{"stopped, then writes again with its old token", line("begin", 1, 5, "a") + line("begin", 3, 9, "b") + line("end", 4, 9, "b") + line("end", 6, 5, "a") + line("begin", 7, 5, "a"),
			Away{"a": {{From: t0.Add(2 * time.Second), To: t0.Add(5 * time.Second)}}}, "token went down"},
		{"stopped, resumed before the next began", line("begin", 1, 5, "a") + line("begin", 3, 9, "b") + line("end", 4, 9, "b") + line("end", 6, 5, "a"),
			Away{"a": {{From: t0.Add(time.Second / 2), To: t0.Add(2 * time.Second)}}}, "two replicas wrote at once"},
		{"stopped, the next writes again after it ran again", line("begin", 1, 5, "a") + line("begin", 3, 9, "b") + line("end", 4, 9, "b") + line("begin", 6, 9, "b") + line("end", 7, 5, "a"),
			Away{"a": {{From: t0.Add(2 * time.Second), To: t0.Add(5 * time.Second)}}}, "before it closed its superseded"},
		{"stopped, the next still open when it ran again", line("begin", 1, 5, "a") + line("begin", 3, 9, "b") + line("end", 7, 5, "a") + line("end", 8, 9, "b"),
			Away{"a": {{From: t0.Add(2 * time.Second), To: t0.Add(5 * time.Second)}}}, "was open"},
		{"stopped, superseded by no higher token", line("begin", 1, 9, "a") + line("begin", 3, 9, "b"),
			Away{"a": {{From: t0.Add(2 * time.Second), To: t0.Add(5 * time.Second)}}}, "two replicas wrote at once"},
		{"token down", line("begin", 1, 9, "a") + line("end", 2, 9, "a") + line("begin", 3, 5, "b"), nil, "token went down"},
		{"end without begin", line("end", 2, 9, "a"), nil, "has no begin"},
	} {
		ev, err := Parse([]byte(c.record))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		err = Check(ev, c.away)
		if c.fail == "" && err != nil || c.fail != "" && (err == nil || !strings.Contains(err.Error(), c.fail)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.fail)
		}
	}
	if _, err := Parse([]byte("begin x 1 apply \"a\"\n")); err == nil {
		t.Error("a bad time parsed")
	}
}
