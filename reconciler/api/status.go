package api

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
)

//go:embed status.html
var statusHTML string

// parseStatusTemplates parses the status page. The template is embedded
// and covered by tests, so a parse error is a programming error.
func parseStatusTemplates() *template.Template {
	return template.Must(template.New("status").Funcs(template.FuncMap{
		"short": func(c string) string {
			if c == "" {
				return "none"
			}
			return kit.Short(c)
		},
		"duration": func(start, end time.Time) string {
			if end.Before(start) {
				return ""
			}
			return end.Sub(start).Round(time.Millisecond).String()
		},
	}).Parse(statusHTML))
}

// Runs shown per environment on the overview and on an environment's page.
const (
	overviewRuns = 5
	detailRuns   = 50
)

// envView is one environment as the status page shows it.
type envView struct {
	status.EnvStatus
	// Link is the relative address of the environment's own page ("" on that page).
	Link         string
	Up           int
	LastRunAgo   string
	DriftAge     string
	HostViews    []hostView
	Runs         []store.Run
	HistoryError string
}

// hostView is one host's line: up or down, and how long it has drifted.
type hostView struct {
	status.HostStatus
	DriftAge string
}

// pageView is the data of a whole page.
type pageView struct {
	Title     string
	Refresh   int
	Generated time.Time
	Envs      []envView
	// Pulled are the pull-mode hosts' newest reports (the index page only).
	Pulled []status.PulledHost
	// Diffs is set on the page of a token holder: each change's diff is shown.
	Diffs bool
}

func (a *API) view(st status.EnvStatus, runs int, link, diffs bool) envView {
	now := a.now()
	v := envView{EnvStatus: st, LastRunAgo: ago(now, st.LastRun), DriftAge: since(now, st.DriftSince)}
	if link {
		v.Link = "environments/" + url.PathEscape(st.Name)
	}
	for _, h := range st.Hosts {
		if h.Up {
			v.Up++
		}
		v.HostViews = append(v.HostViews, hostView{HostStatus: h, DriftAge: since(now, h.DriftSince)})
	}
	hist, err := a.opts.Reconciler.History(st.Name, runs)
	if err != nil {
		a.log.Error().Err(err).Str("environment", st.Name).Msg("cannot read history for the status page")
		v.HistoryError = err.Error()
	}
	if !diffs {
		for i := range hist {
			hideDiffs(hist[i].Changed)
		}
	}
	v.Runs = hist
	return v
}

// hideDiffs blanks the diffs of changes, for whoever lacks the API token.
func hideDiffs(changes []store.ResourceChange) {
	for i := range changes {
		changes[i].Diff = ""
	}
}

// statusPage serves GET /: every environment with its last runs.
func (a *API) statusPage(w http.ResponseWriter, _ *http.Request) {
	p := a.page("driftless")
	for _, st := range a.opts.Reconciler.Environments() {
		p.Envs = append(p.Envs, a.view(st, overviewRuns, true, false))
	}
	p.Pulled = a.pulledHosts()
	a.render(w, http.StatusOK, "index", p)
}

// envPage serves GET /environments/{name}, the page reports link to.
func (a *API) envPage(w http.ResponseWriter, r *http.Request) {
	a.detail(w, r, false)
}

// diffsPage serves GET /environments/{name}/diffs: the environment's page
// with each change's diff, for a holder of the API token. A browser asks
// for it (HTTP basic authentication, the token as password): no script.
func (a *API) diffsPage(w http.ResponseWriter, r *http.Request) {
	if !a.tokenHolder(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="driftless: any user name, the API token as password", charset="UTF-8"`)
		http.Error(w, "the diffs need the API token (as the password of basic authentication, or a bearer token)", http.StatusUnauthorized)
		return
	}
	a.detail(w, r, true)
}

func (a *API) detail(w http.ResponseWriter, r *http.Request, diffs bool) {
	name := r.PathValue("name")
	st, ok := a.opts.Reconciler.Environment(name)
	if !ok {
		http.Error(w, "unknown environment "+name, http.StatusNotFound)
		return
	}
	p := a.page(name + " - driftless")
	p.Diffs = diffs
	p.Envs = []envView{a.view(st, detailRuns, false, diffs)}
	a.render(w, http.StatusOK, "detail", p)
}

func (a *API) page(title string) pageView {
	now := a.now()
	return pageView{Title: title, Refresh: int(a.opts.Refresh / time.Second), Generated: now}
}

// render executes a template into a buffer first, so that a template
// error becomes a clean 500 instead of half a page.
func (a *API) render(w http.ResponseWriter, code int, name string, p pageView) {
	var buf bytes.Buffer
	if err := a.pages.ExecuteTemplate(&buf, name, p); err != nil {
		a.log.Error().Err(err).Str("page", name).Msg("cannot render the status page")
		http.Error(w, "cannot render the status page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	// The page has no script at all; the policy makes sure none runs.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// since says how long a drift has lasted ("" when there is none).
func since(now, at time.Time) string {
	if at.IsZero() {
		return ""
	}
	d := now.Sub(at)
	if d < time.Second {
		return "under 1s"
	}
	return d.Round(time.Second).String()
}

// ago says how long before now a time was, for people.
func ago(now, at time.Time) string {
	if at.IsZero() {
		return "never"
	}
	d := now.Sub(at)
	if d < time.Second {
		return "just now"
	}
	return d.Round(time.Second).String() + " ago"
}
