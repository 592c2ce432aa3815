package hosts

import (
	"fmt"
	"testing"
)

// BenchmarkKind1Start measures starting a kind-1 host until sshd answers.
func BenchmarkKind1Start(b *testing.B) {
	lab := NewLab(b, Options{})
	i := 0
	for b.Loop() {
		h := lab.Kind1(fmt.Sprintf("b1-%d", i))
		i++
		b.StopTimer()
		h.Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/host")
}

// BenchmarkKind2Start measures booting a kind-2 host until sshd answers
// and systemd reports running.
func BenchmarkKind2Start(b *testing.B) {
	lab := NewLab(b, Options{})
	i := 0
	for b.Loop() {
		h := lab.Kind2(fmt.Sprintf("b2-%d", i))
		i++
		b.StopTimer()
		h.Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/host")
}
