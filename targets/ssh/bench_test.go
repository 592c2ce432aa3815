package ssh_test

import (
	"context"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
)

func BenchmarkRun(b *testing.B) {
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind1("bench-run")
	tr := dial(b, lab, h, nil)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if res, err := tr.Run(ctx, "true", nil); err != nil || res.Exit != 0 {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}

func BenchmarkHandshake(b *testing.B) {
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind1("bench-dial")
	ctx := context.Background()
	cfg := ssh.Config{Address: h.Address, KeyFiles: []string{lab.ClientKeyFile}, KnownHostsFile: lab.KnownHostsFile}
	b.ResetTimer()
	for b.Loop() {
		tr, err := ssh.Dial(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		tr.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}

// BenchmarkRawSession is the floor BenchmarkRun is compared with: a bare
// x/crypto session running "true", without the script framing.
func BenchmarkRawSession(b *testing.B) {
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind1("raw")
	kh, err := knownhosts.New(lab.KnownHostsFile)
	if err != nil {
		b.Fatal(err)
	}
	c, err := gossh.Dial("tcp", h.Address+":22", &gossh.ClientConfig{User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(lab.Signer)}, HostKeyCallback: kh})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		s, err := c.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Run("true"); err != nil {
			b.Fatal(err)
		}
	}
}
