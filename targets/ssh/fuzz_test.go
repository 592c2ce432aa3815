package ssh

import (
	"bytes"
	"crypto/ed25519"
	"net"
	"strconv"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// FuzzGroupWriter feeds the remote's output in arbitrary chunks: whatever
// precedes the group marker line is dropped, the marker line gives the
// group, and everything after it is kept intact.
func FuzzGroupWriter(f *testing.F) {
	f.Add([]byte("driftless-pgid:1234\nhello\nworld"), uint8(3))
	f.Add([]byte("motd noise\ndriftless-pgid:7\nout"), uint8(5))
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
		var body []byte
		want := 0
		for rest := data; ; {
			line, after, found := bytes.Cut(rest, []byte("\n"))
			if !found {
				break
			}
			if g, ok := bytes.CutPrefix(line, []byte(groupMarker)); ok {
				want, _ = strconv.Atoi(string(g))
				body = after
				break
			}
			rest = after
		}
		if got := w.bytes(); !bytes.Equal(got, body) {
			t.Fatalf("body %q, want %q", got, body)
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
