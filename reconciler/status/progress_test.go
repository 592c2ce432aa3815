package status

import (
	"fmt"
	"testing"
)

// TestProgressLog: events are numbered across environments, read after a
// number, and bounded per environment.
func TestProgressLog(t *testing.T) {
	l := NewProgressLog(3)
	for i := range 10 {
		l.Add(Event{Environment: "a", Host: fmt.Sprint(i)})
		l.Add(Event{Environment: "b", Host: fmt.Sprint(i)})
	}
	evs, next := l.Since("a", 0)
	if next != 20 || len(evs) != 3 || evs[0].Host != "7" || evs[2].Host != "9" || evs[2].Seq != 19 {
		t.Fatalf("since 0: next %d, %+v", next, evs)
	}
	if evs, _ := l.Since("a", 17); len(evs) != 1 || evs[0].Seq != 19 {
		t.Fatalf("since 17: %+v", evs)
	}
	if evs, next := l.Since("none", 0); len(evs) != 0 || next != 20 {
		t.Fatalf("unknown environment: %+v, next %d", evs, next)
	}
	for range 1000 {
		l.Add(Event{Environment: "a"})
	}
	if n := cap(l.envs["a"]); n > 8 {
		t.Errorf("the log of one environment grew to a capacity of %d for a size of 3", n)
	}
}
