package webhook

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/driftless/driftless/sources"
)

// DefaultGenericHeader is the header carrying the generic provider's
// signature when none is configured.
const DefaultGenericHeader = "X-Driftless-Signature"

// VerifyGeneric returns the generic provider's signature check: the hex
// HMAC-SHA256 of the raw body (optionally prefixed "sha256=") in the given
// header, DefaultGenericHeader when empty.
func VerifyGeneric(header string) VerifyFunc {
	if header == "" {
		header = DefaultGenericHeader
	}
	return func(h http.Header, body, secret []byte) error {
		return checkHexHMAC(h.Get(header), body, secret)
	}
}

// genericPayload is the documented body of the generic provider:
//
//	{"repository": "owner/name", "ref": "refs/heads/main",
//	 "commit": "<full commit id>", "deleted": false, "clone_url": "..."}
//
// repository and ref are required; a ref without "refs/" is taken as a
// branch. commit is optional: without it the Git source fetches the ref and
// takes whatever it points to. The delivery id, when the sender has one, goes in
// X-Driftless-Delivery (or X-Request-Id).
type genericPayload struct {
	Repository string `json:"repository"`
	Ref        string `json:"ref"`
	Commit     string `json:"commit"`
	Deleted    bool   `json:"deleted"`
	CloneURL   string `json:"clone_url"`
}

// ParseGeneric turns a generic delivery into a push (or tag_push) event.
// A CI job or a script can send it to make driftless fetch at once.
func ParseGeneric(h http.Header, body []byte) (sources.Event, error) {
	ev := sources.Event{Provider: "generic", Kind: KindPush, DeliveryID: firstHeader(h, "X-Driftless-Delivery", "X-Request-Id")}
	var p genericPayload
	if err := decode(body, &p); err != nil {
		return ev, fmt.Errorf("parse generic push: %w", err)
	}
	if p.Repository == "" {
		return ev, fmt.Errorf("parse generic push: %w: repository is required", ErrBadPayload)
	}
	if p.Ref == "" {
		return ev, fmt.Errorf("parse generic push: %w: ref is required", ErrBadPayload)
	}
	ref := p.Ref
	if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + ref
	}
	ev.Repository = p.Repository
	ev.CloneURLs = urls(p.CloneURL)
	return finish(pushEvent(ev, ref, p.Commit, p.Deleted))
}
