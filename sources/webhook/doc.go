// Package webhook receives signed webhooks from GitHub, GitLab, Gitea,
// Forgejo, Gogs, Bitbucket (Cloud and Data Center) and generic senders,
// checks their signatures, and turns them into sources.Event values that the
// Git sources use to fetch at once instead of waiting for their next poll.
//
// # Endpoints
//
// The handler serves POST /hooks/{provider}, provider being github, gitlab,
// gitea, forgejo, gogs, bitbucket or generic. Forgejo and Gogs sign as
// Gitea does and use Gitea's secret; Bitbucket Cloud and Data Center share
// one endpoint and are told apart by their event keys.
//
// # How each sender is authenticated
//
//   - github: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>.
//     A request carrying only the legacy SHA-1 X-Hub-Signature is refused.
//   - gitea, forgejo, gogs: bare hex HMAC-SHA256 in X-Forgejo-Signature,
//     X-Gitea-Signature or X-Gogs-Signature.
//   - gitlab: X-Gitlab-Token holds the secret itself, compared in constant
//     time.
//   - bitbucket: X-Hub-Signature: sha256=<hex HMAC-SHA256>.
//   - generic: hex HMAC-SHA256 of the body, optionally "sha256="-prefixed,
//     in the configured header (X-Driftless-Signature by default). Its body
//     is {"repository": "owner/name", "ref": "refs/heads/main", "commit":
//     "<id>", "deleted": false, "clone_url": "..."}; repository and ref are
//     required.
//
// A generic sender, a CI job for example, signs and sends like this:
//
//	body='{"repository":"ops/fleet","ref":"main","commit":"'"$SHA"'"}'
//	sig=$(printf %s "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
//	curl -fsS -H "X-Driftless-Signature: sha256=$sig" -d "$body" https://driftless.example/hooks/generic
//
// # Answers
//
//	200 a ping, accepted
//	202 an event accepted (a target scheduled a fetch) or acknowledged and ignored
//	400 a body that is not the payload its event header announces
//	401 a missing or wrong signature (also a SHA-1-only GitHub signature)
//	403 the provider has no secret configured: it refuses every request
//	404 an unknown provider
//	405 a method other than POST
//	408 a body not received within the read timeout (30 s by default)
//	409 a delivery (its id or its body) already received within the replay window
//	413 a body over the size cap (25 MiB by default)
//	500 the delivery store failed
//
// Every request counts once in driftless_webhook_requests_total{provider,
// event, result} and writes one log line. Bodies are never logged, nor any
// header value before the signature is verified: some senders put the
// secret in the body.
//
// # Replays
//
// After the signature is verified (so that unauthenticated requests cannot
// fill it), a DeliveryStore records two keys per delivery: the sender's
// delivery id (X-GitHub-Delivery, X-Gitea-Delivery, X-Gitlab-Event-UUID,
// X-Request-UUID, X-Driftless-Delivery...) and the SHA-256 of the body. A
// delivery matching either within the replay window (24 h by default) is
// refused with 409: signatures cover the body but not the headers, so a
// captured request replayed under a new id is caught by its body. A sender
// re-sending the very same payload on purpose (GitLab's "test" button)
// therefore has to wait for the window to pass.
package webhook
