package webhook

import (
	"fmt"
	"time"

	"github.com/driftless/driftless/config"
)

// ConfigOptions reads the webhook section of driftless.yaml into Options:
// the secrets (read now, from their files or environment variables), the
// generic provider's header and the replay window. The caller adds the
// logger, registerer, targets and delivery store. A provider left out of
// the configuration gets no secret and refuses every request; a secret that
// is configured but cannot be read is an error, never a silently open or
// closed endpoint.
func ConfigOptions(w config.Webhooks) (Options, error) {
	var o Options
	for _, s := range []struct {
		name string
		ref  config.Secret
		dst  *[]byte
	}{
		{"github", w.GitHub, &o.Secrets.GitHub},
		{"gitlab", w.GitLab, &o.Secrets.GitLab},
		{"gitea", w.Gitea, &o.Secrets.Gitea},
		{"bitbucket", w.Bitbucket, &o.Secrets.Bitbucket},
		{"generic", w.Generic.Secret, &o.Secrets.Generic},
	} {
		if s.ref.IsZero() {
			continue
		}
		v, err := s.ref.Read()
		if err != nil {
			return Options{}, fmt.Errorf("webhooks.%s: %w", s.name, err)
		}
		*s.dst = v
	}
	o.GenericHeader = w.Generic.Header
	o.ReplayWindow = time.Duration(w.Replay)
	return o, nil
}
