package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// vector is one known-answer signature vector of testdata/known-answer-vectors.json.
type vector struct {
	Source string `json:"source"`
	File   string `json:"file"`
	Secret string `json:"secret"`
	Header string `json:"header"`
	Value  string `json:"value"`
	Expect string `json:"expect"`
	Scheme string `json:"scheme"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	var doc struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(readCorpus(t, "known-answer-vectors.json"), &doc); err != nil {
		t.Fatalf("decode vectors: %v", err)
	}
	if len(doc.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return doc.Vectors
}

// TestKnownAnswerVectors checks every third-party vector against the
// provider's own signature check. The one SHA-1 vector is valid as a MAC
// (checked here with crypto/sha1) but refused by policy.
func TestKnownAnswerVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		t.Run(v.File+"/"+v.Header+"/"+v.Expect+"/"+string(rune('a'+i)), func(t *testing.T) {
			body := readCorpus(t, v.File)
			h := http.Header{}
			h.Set(v.Header, v.Value)
			var err error
			switch {
			case v.Scheme == "prefixed-hmac" && strings.HasPrefix(v.Value, "sha1="):
				mac := hmac.New(sha1.New, []byte(v.Secret))
				mac.Write(body)
				if ok := "sha1="+hex.EncodeToString(mac.Sum(nil)) == v.Value; ok != (v.Expect == "valid") {
					t.Fatalf("SHA-1 MAC match = %v, vector expects %s", ok, v.Expect)
				}
				if err := VerifyGitHub(h, body, []byte(v.Secret)); !errors.Is(err, ErrSHA1Refused) {
					t.Fatalf("SHA-1-only request: err = %v, want ErrSHA1Refused", err)
				}
				if err := VerifyBitbucket(h, body, []byte(v.Secret)); err == nil {
					t.Fatal("Bitbucket accepted a SHA-1 signature")
				}
				return
			case v.Scheme == "prefixed-hmac":
				err = VerifyGitHub(h, body, []byte(v.Secret))
				// Bitbucket sends the same "sha256=" form under X-Hub-Signature.
				hb := http.Header{}
				hb.Set("X-Hub-Signature", v.Value)
				if errB := VerifyBitbucket(hb, body, []byte(v.Secret)); (errB == nil) != (err == nil) {
					t.Errorf("bitbucket verdict %v differs from github verdict %v", errB, err)
				}
			case v.Scheme == "hex-hmac-sha256":
				err = VerifyGitea(h, body, []byte(v.Secret))
			case v.Scheme == "plain-token-equality":
				err = VerifyGitLab(h, body, []byte(v.Secret))
			default:
				t.Fatalf("unknown scheme %q", v.Scheme)
			}
			switch v.Expect {
			case "valid":
				if err != nil {
					t.Fatalf("valid vector refused: %v", err)
				}
			case "invalid":
				if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMissingSignature) {
					t.Fatalf("invalid vector: err = %v, want a signature error", err)
				}
				if v.Value == "" && !errors.Is(err, ErrMissingSignature) {
					t.Fatalf("empty signature: err = %v, want ErrMissingSignature", err)
				}
			default:
				t.Fatalf("unknown expectation %q", v.Expect)
			}
		})
	}
}

// TestSignatureEdgeCases covers what the vectors do not: a right MAC under
// the wrong secret, a MAC of a changed body, truncated and non-hex values,
// and the generic provider's two accepted forms.
func TestSignatureEdgeCases(t *testing.T) {
	body := []byte(`{"repository":"o/r","ref":"main","commit":"abc"}`)
	secret := []byte("s3cret")
	good := SignHex(secret, body)
	gen := VerifyGeneric("X-Signature")
	tests := []struct {
		name   string
		verify VerifyFunc
		header string
		value  string
		body   []byte
		want   error
	}{
		{"generic bare hex", gen, "X-Signature", good, body, nil},
		{"generic prefixed", gen, "X-Signature", "sha256=" + good, body, nil},
		{"generic default header unused", gen, DefaultGenericHeader, good, body, ErrMissingSignature},
		{"generic changed body", gen, "X-Signature", good, append([]byte(" "), body...), ErrBadSignature},
		{"generic wrong secret", gen, "X-Signature", SignHex([]byte("other"), body), body, ErrBadSignature},
		{"generic truncated", gen, "X-Signature", good[:20], body, ErrBadSignature},
		{"generic not hex", gen, "X-Signature", strings.Repeat("zz", 32), body, ErrBadSignature},
		{"github bare hex refused", VerifyGitHub, "X-Hub-Signature-256", good, body, ErrBadSignature},
		{"github sha512 refused", VerifyGitHub, "X-Hub-Signature-256", "sha512=" + good, body, ErrBadSignature},
		{"github good", VerifyGitHub, "X-Hub-Signature-256", "sha256=" + good, body, nil},
		{"bitbucket bare hex refused", VerifyBitbucket, "X-Hub-Signature", good, body, ErrBadSignature},
		{"gitea prefixed accepted", VerifyGitea, "X-Gitea-Signature", good, body, nil},
		{"forgejo", VerifyGitea, "X-Forgejo-Signature", good, body, nil},
		{"gogs wrong", VerifyGitea, "X-Gogs-Signature", SignHex(secret, []byte("x")), body, ErrBadSignature},
		{"gitlab prefix of token", VerifyGitLab, "X-Gitlab-Token", "s3cre", body, ErrBadSignature},
		{"gitlab token", VerifyGitLab, "X-Gitlab-Token", "s3cret", body, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(tt.header, tt.value)
			err := tt.verify(h, tt.body, secret)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
