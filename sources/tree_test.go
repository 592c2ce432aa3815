package sources

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCheckTreePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"environments/prod.yaml", true},
		{"a/b/c", true},
		{"weird\\name", true},
		{"", false},
		{"/etc/passwd", false},
		{"../escape", false},
		{"a/../../b", false},
		{"a//b", false},
		{"./a", false},
		{".git/config", false},
		{"sub/.GIT/hooks/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := checkTreePath(tt.path)
			if (err == nil) != tt.ok {
				t.Fatalf("checkTreePath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errUnsafePath) {
				t.Errorf("error %v does not wrap errUnsafePath", err)
			}
		})
	}
}

// TestMetricsSharedByTwoSources: the second source on one registerer reuses
// the first one's collectors instead of failing, and each has its series.
func TestMetricsSharedByTwoSources(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newMetrics(reg)
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	a.up.WithLabelValues("one").Set(1)
	b.up.WithLabelValues("two").Set(0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "driftless_source_up" && len(mf.GetMetric()) != 2 {
			t.Fatalf("driftless_source_up has %d series, want 2", len(mf.GetMetric()))
		}
	}
}
