package ssh

import (
	"bytes"
	"crypto/ed25519"
	"net"
	"strconv"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// FuzzGroupWriter feeds the remote's output in arbitrary chunks: the first
// line is always taken apart as the process group, the rest kept intact.
func FuzzGroupWriter(f *testing.F) {
	f.Add([]byte("1234\nhello\nworld"), uint8(3))
	f.Add([]byte("\n"), uint8(1))
	f.Add([]byte("no newline"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var w groupWriter
		size := int(chunk)%17 + 1
		for rest := data; len(rest) > 0; {
			n := min(size, len(rest))
			if m, err := w.Write(rest[:n]); m != n || err != nil {
				t.Fatalf("Write returned %d, %v", m, err)
			}
			rest = rest[n:]
		}
		head, body, found := bytes.Cut(data, []byte("\n"))
		if !found {
			body = nil
		}
		if got := w.bytes(); !bytes.Equal(got, body) {
			t.Fatalf("body %q, want %q", got, body)
		}
		want, err := strconv.Atoi(string(head))
		if !found || err != nil {
			want = 0
		}
		if g := w.group(); g != want {
			t.Fatalf("group %d, want %d", g, want)
		}
	})
}

// FuzzPinnedKey gives the pinned-key check arbitrary configuration text:
// it is refused with an error or it accepts exactly the key it names.
func FuzzPinnedKey(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	k, _ := gossh.NewPublicKey(pub)
	f.Add(string(gossh.MarshalAuthorizedKey(k)))
	f.Add("ssh-ed25519 AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, pinned string) {
		if pinned == "" {
			return
		}
		cfg := Config{Address: "192.0.2.1", PinnedKey: pinned}
		cb, _, err := cfg.hostKeyCheck()
		if err != nil {
			return
		}
		parsed, _, _, _, perr := gossh.ParseAuthorizedKey([]byte(pinned))
		if perr != nil {
			t.Fatalf("accepted a pinned key that does not parse: %v", perr)
		}
		addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}
		if err := cb("192.0.2.1:22", addr, parsed); err != nil {
			t.Fatalf("the pinned key itself was refused: %v", err)
		}
		if !bytes.Equal(parsed.Marshal(), k.Marshal()) {
			if err := cb("192.0.2.1:22", addr, k); err == nil {
				t.Fatal("another key was accepted")
			}
		}
	})
}
